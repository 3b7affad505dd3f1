"""The one model protocol every kc model follows, scikit-learn style."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.errors import UsageError

EpochCallback = Callable[[dict[str, float]], None]


class NotFittedError(UsageError):
    """`predict` was called before `fit`."""


@dataclasses.dataclass
class Model:
    """Base class: dataclass fields are hyperparameters; learned state ends in `_` and is set by `fit`."""

    name: ClassVar[str] = "model"

    def params(self) -> dict[str, Any]:
        """The hyperparameters, as saved with every run."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Model:
        """Build from a dict of hyperparameters, converting strings from the command line; reject unknown ones."""
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise UsageError(f"model '{cls.name}' has no option {', '.join(unknown)}; it takes: {', '.join(fields)}")
        converted = {}
        for key, value in params.items():
            default = fields[key].default
            converted[key] = _coerce(key, value, type(default)) if isinstance(value, str) else value
        return cls(**converted)

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> Model:
        """Learn from X, y (optionally watching a validation set each epoch); return self."""
        raise NotImplementedError

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, classes) float32 class probabilities."""
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n,) int64 class labels."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def save(self, folder: Path) -> None:
        """Write learned state into `folder`."""
        raise NotImplementedError

    def load(self, folder: Path) -> Model:
        """Read learned state written by `save`; return self."""
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if getattr(self, "classes_", None) is None:
            raise NotFittedError(f"this {self.name} model is not fitted yet: call fit(X, y) first")

    classes_: np.ndarray | None = dataclasses.field(default=None, init=False, repr=False, compare=False)
    history_: list[dict[str, float]] = dataclasses.field(default_factory=list, init=False, repr=False, compare=False)
    interrupted_: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)


def _coerce(key: str, value: str, kind: type) -> Any:
    """Turn a command-line string into the field's type, or say what was expected."""
    try:
        if kind is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return kind(value)
    except ValueError:
        raise UsageError(f"option {key}={value!r}: expected {kind.__name__}") from None


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of labels predicted right."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))
