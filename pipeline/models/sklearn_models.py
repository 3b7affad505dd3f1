"""scikit-learn baselines beside kc's own models, so a user sees where the hand-written ones stand."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline import images
from pipeline.models.base import EpochCallback, Model


@dataclasses.dataclass
class _Sklearn(Model):
    """Wraps one scikit-learn estimator in kc's protocol. Saved as a pickle: load only runs you made."""

    estimator_: Any = dataclasses.field(default=None, init=False, repr=False)

    def _make(self) -> Any:
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> _Sklearn:
        """Fit the estimator on flattened inputs."""
        self.estimator_ = self._make().fit(images.flat_inputs(X), y)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The estimator's class probabilities."""
        self._check_fitted()
        return self.estimator_.predict_proba(images.flat_inputs(X)).astype(np.float32)

    def save(self, folder: Path) -> None:
        """Pickle the fitted estimator."""
        (folder / "estimator.pkl").write_bytes(pickle.dumps(self.estimator_))

    def load(self, folder: Path) -> _Sklearn:
        """Unpickle the estimator written by `save`."""
        self.estimator_ = pickle.loads((folder / "estimator.pkl").read_bytes())
        self.classes_ = self.estimator_.classes_
        return self


@dataclasses.dataclass
class SkLogistic(_Sklearn):
    """scikit-learn LogisticRegression (L-BFGS)."""

    name: ClassVar[str] = "sk-logistic"
    C: float = 1.0
    max_iter: int = 200

    def _make(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=self.max_iter)


@dataclasses.dataclass
class SkForest(_Sklearn):
    """scikit-learn RandomForestClassifier."""

    name: ClassVar[str] = "sk-forest"
    n_estimators: int = 200
    max_depth: int = 0  # 0 = unlimited
    seed: int = 0

    def _make(self) -> Any:
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=self.n_estimators, max_depth=self.max_depth or None,
                                      random_state=self.seed, n_jobs=-1)
