"""CatBoost: ordered boosting of symmetric trees, early-stopped on an inner split of the rows it fits.

The same contract as `lgbm`: each `fit` holds out its own inner split (stratified for classes) to choose the number
of rounds, never the rows the run scores; then, by default, fits again on every row for that many rounds (a few more,
since it now sees more rows). Log loss for class codes, RMSE for values (the trainer already hands over the metric's
scale). A saved model is CatBoost's own binary format, which CatBoost verifies as it reads it; kc also checks that it
takes the run's features and predicts the run's classes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.core.errors import DataError, UsageError
from pipeline.models._boosting import Boosted, RoundClock, inner_split
from pipeline.models.base import saved_file
from pipeline.pixels import images

SAVED = "catboost.cbm"
STATE = "catboost.json"


@dataclasses.dataclass
class CatBoostModel(Boosted):
    """CatBoost's boosted symmetric trees on raw (unscaled) features; any task."""

    name: ClassVar[str] = "catboost"
    modalities: ClassVar[tuple[str, ...]] = ("tabular",)
    space: ClassVar[dict[str, str]] = {"learning_rate": "0.01:0.3:log", "depth": "3:10",
                                       "l2_leaf_reg": "0.5:30:log"}
    learning_rate: float = 0.05
    iterations: int = 3000  # most boosting rounds; early stopping usually keeps far fewer
    depth: int = 6
    l2_leaf_reg: float = 3.0

    model_: Any = dataclasses.field(default=None, init=False, repr=False)

    def _estimator(self, rounds: int, deadline: float | None) -> tuple[Any, _Deadline]:
        import catboost

        if self.depth < 1 or self.depth > 16:
            raise UsageError(f"option depth={self.depth}: expected 1 to 16")
        if not 0 < self.inner_pct < 0.5:
            raise UsageError(f"option inner_pct={self.inner_pct}: expected a share above 0, below 0.5")
        loss = "RMSE" if self.regression_ else "Logloss" if len(self.classes_) == 2 else "MultiClass"
        cls = catboost.CatBoostRegressor if self.regression_ else catboost.CatBoostClassifier
        clock = _Deadline(deadline)
        return cls(iterations=rounds, learning_rate=self.learning_rate, depth=self.depth,
                   l2_leaf_reg=self.l2_leaf_reg, loss_function=loss, random_seed=self.seed,
                   thread_count=self.thread_count, verbose=False, allow_writing_files=False), clock

    def _fit(self, X: np.ndarray, y: np.ndarray, deadline: float | None) -> None:
        """One booster on X, y, early-stopping on an inner split of these rows, ending by the deadline."""
        self._start(y)
        x = images.flat_inputs(X).astype(np.float32, copy=False)
        if self.regression_:
            target = np.asarray(y, np.float64)
            if len(target) and np.ptp(target) == 0:
                raise DataError("catboost needs targets of at least two values to learn from; these rows hold one")
        else:
            if len(self.classes_) < 2:
                raise DataError("catboost needs rows of at least two classes to learn from; use more rows or folds")
            target = np.searchsorted(self.classes_, y)
        model, clock = self._estimator(self.iterations, deadline)
        fit_rows, held = inner_split(None if self.regression_ else target, len(x), self.inner_pct, self.seed) \
            if self.patience > 0 else (None, None)
        if fit_rows is not None and np.ptp(target[fit_rows]) == 0:  # catboost refuses one value: fit every row
            fit_rows = None
        if fit_rows is not None:
            model.fit(x[fit_rows], target[fit_rows], eval_set=(x[held], target[held]), use_best_model=True,
                      early_stopping_rounds=self.patience, callbacks=[clock])
            rounds = model.get_best_iteration() + 1
            stopped = "time" if clock.hit else "patience" if clock.rounds < self.iterations else "rounds"
            if self._refits(len(x)) and not clock.hit:  # on every row: a few more rounds than on (1 - inner)
                model, clock = self._estimator(max(1, round(rounds / (1 - self.inner_pct))), deadline)
                model.fit(x, target, callbacks=[clock])
                stopped = "time" if clock.hit else stopped  # a refit cut short is cut short
        else:
            model.fit(x, target, callbacks=[clock])
            stopped = "time" if clock.hit else "rounds"
        self.model_, self.best_rounds_, self.stopped_by_ = model, int(model.tree_count_), stopped

    def _width(self) -> int:
        return len(self.model_.feature_names_)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        """(n, classes) float32 probabilities."""
        self._check_fitted()
        x = images.flat_inputs(X).astype(np.float32, copy=False)
        return self.model_.predict_proba(x, thread_count=self.thread_count).astype(np.float32)

    def _values(self, X: np.ndarray) -> np.ndarray:
        """(n,) float64 predicted values."""
        self._check_fitted()
        x = images.flat_inputs(X).astype(np.float32, copy=False)
        return np.asarray(self.model_.predict(x, thread_count=self.thread_count), np.float64)

    def _save(self, folder: Path) -> None:
        """The model in CatBoost's format and what kc needs beside it, as JSON."""
        self._check_fitted()
        self.model_.save_model(str(folder / SAVED))
        state = {"regression": self.regression_, "rounds": self.best_rounds_, "stopped_by": self.stopped_by_,
                 "features": len(self.model_.feature_names_),
                 "classes": None if self.classes_ is None else self.classes_.tolist()}
        (folder / STATE).write_text(json.dumps(state, indent=2))

    def _load(self, folder: Path) -> None:
        """Read what `save` wrote; CatBoost verifies its file, kc that it fits the run's features and classes."""
        import catboost

        try:
            state = json.loads((folder / STATE).read_text())
            regression, n_features = bool(state["regression"]), int(state["features"])
            classes = None if state["classes"] is None else np.asarray(state["classes"], dtype=np.int64)
            model = (catboost.CatBoostRegressor() if regression else catboost.CatBoostClassifier())
            model.load_model(str(folder / SAVED))
        except (OSError, ValueError, KeyError, TypeError, catboost.CatBoostError) as exc:
            raise DataError(f"{saved_file(folder, SAVED)} or {STATE} cannot be read ({str(exc).strip()[:200]}); "
                            "train it again") from None
        kept = [] if regression or classes is None else list(range(len(classes)))
        if len(model.feature_names_) != n_features or [int(c) for c in getattr(model, "classes_", [])] != kept:
            raise DataError(f"{saved_file(folder, SAVED)} does not match the run's features or classes; train it again")
        self.model_, self.best_rounds_ = model, int(model.tree_count_)
        self.stopped_by_ = str(state.get("stopped_by", ""))
        self.regression_, self.classes_, self.fitted_ = regression, classes, True


class _Deadline:
    """A CatBoost callback: stop when the next round would end past the deadline."""

    def __init__(self, deadline: float | None):
        self.clock, self.hit, self.rounds = RoundClock(deadline), False, 0

    def after_iteration(self, info: Any) -> bool:
        """False (stop) when one more round would overrun; CatBoost keeps the rounds done so far."""
        self.rounds += 1  # rounds run (use_best_model later cuts the trees back to the best of them)
        self.hit = self.hit or self.clock.next_overruns()
        return not self.hit
