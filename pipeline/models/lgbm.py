"""LightGBM: boosted trees with early stopping on an inner split of the rows it fits, saved in LightGBM's text format.

Early stopping never looks at the rows a run scores: each `fit` carves its own inner split (stratified for classes)
out of the rows it is given, stops when the loss on that split has not improved for `patience` rounds or when its
`time_limit` is spent, and keeps the best round. The objective follows the target: log loss (binary or multiclass,
so probabilities are calibrated) for class codes, squared error for values (kc's trainer already hands a model the
metric's scale, e.g. log prices for RMSE of logs). With a time limit that leaves room, further boosters of other
seeds are averaged in (see `_boosting.Boosted`). A saved model is a text file LightGBM parses; kc checks every
tree's node indices and features before handing it over, since LightGBM follows them without bounds checks.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.core.errors import DataError, UsageError
from pipeline.models._boosting import Boosted, RoundClock, inner_split
from pipeline.models.base import saved_file
from pipeline.pixels import images

BOOSTER = "lgbm.txt"
STATE = "lgbm.json"


@dataclasses.dataclass
class LGBMModel(Boosted):
    """LightGBM gradient-boosted trees on raw (unscaled) features; any task."""

    name: ClassVar[str] = "lgbm"
    space: ClassVar[dict[str, str]] = {"learning_rate": "0.01:0.2:log", "num_leaves": "7:255:log",
                                       "min_data_in_leaf": "2:100:log", "feature_fraction": "0.2:1",
                                       "bagging_fraction": "0.5:1", "lambda_l2": "1e-3:30:log"}
    learning_rate: float = 0.05
    n_estimators: int = 5000  # most boosting rounds; early stopping usually keeps far fewer
    num_leaves: int = 31
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.8  # share of the features each tree may split on
    bagging_fraction: float = 0.8  # share of the rows each round sees (drawn afresh every round)
    lambda_l2: float = 0.0

    booster_: Any = dataclasses.field(default=None, init=False, repr=False)

    def _params(self, n_classes: int) -> dict[str, Any]:
        for key in ("feature_fraction", "bagging_fraction"):
            if not 0 < getattr(self, key) <= 1:
                raise UsageError(f"option {key}={getattr(self, key)}: expected a share above 0, at most 1")
        if not 0 < self.inner_pct < 0.5:
            raise UsageError(f"option inner_pct={self.inner_pct}: expected a share above 0, below 0.5")
        if self.num_leaves < 2:
            raise UsageError(f"option num_leaves={self.num_leaves}: expected 2 or more")
        if self.regression_:
            objective: dict[str, Any] = {"objective": "regression", "metric": "l2"}
        elif n_classes == 2:
            objective = {"objective": "binary", "metric": "binary_logloss"}
        else:
            objective = {"objective": "multiclass", "metric": "multi_logloss", "num_class": n_classes}
        return {**objective, "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                "min_data_in_leaf": self.min_data_in_leaf, "feature_fraction": self.feature_fraction,
                "bagging_fraction": self.bagging_fraction, "bagging_freq": 1 if self.bagging_fraction < 1 else 0,
                "lambda_l2": self.lambda_l2, "num_threads": self.thread_count, "seed": self.seed,
                "deterministic": True, "force_row_wise": True, "verbosity": -1}

    def _rows(self, X: np.ndarray, y: np.ndarray) -> Any:
        """The rows binned once by LightGBM, without copying them: every booster's inner split and refit are subsets."""
        import lightgbm as lgb

        self._start(y)
        return lgb.Dataset(images.flat_inputs(X), self._target(y), params=self._params(self._n_classes()),
                           free_raw_data=True).construct()

    def _fit(self, rows: Any, y: np.ndarray, deadline: float | None) -> None:
        """One booster on the binned rows, early-stopping on an inner split of them, ending by the deadline."""
        import lightgbm as lgb

        self._start(y)
        params, stop = self._params(self._n_classes()), _Stopper(self.patience, deadline)
        data, valid = self._inner_sets(rows, self._target(y))
        # keep_training_booster: not re-parsing the model from text after each fit (Boosted.fit rebuilds the last
        # from its trees on big tables only)
        booster = lgb.train(params, data, num_boost_round=self.n_estimators, valid_sets=valid, callbacks=[stop],
                            keep_training_booster=True)
        rounds = stop.best + 1 if valid else booster.current_iteration()
        if self._refits(len(y)) and valid and stop.reason != "time":
            # the stopped rounds were learnt on (1 - inner_pct) of the rows: a fit on all of them takes a few more
            rounds = max(1, round(rounds / (1 - self.inner_pct)))
            del booster, data, valid  # their binned rows are not needed again
            again = _Stopper(0, stop.deadline)
            booster = lgb.train(params, rows, num_boost_round=rounds, callbacks=[again], keep_training_booster=True)
            rounds = booster.current_iteration()
            stop.reason = "time" if again.reason == "time" else stop.reason  # a refit cut short is cut short
        self.booster_, self.best_rounds_, self.stopped_by_ = booster, int(rounds), stop.reason

    def _inner_sets(self, whole: Any, target: np.ndarray) -> tuple[Any, list[Any]]:
        """The rows boosted on and, when stopping early, the inner split it watches: binned subsets of `whole`."""
        if self.patience <= 0:
            return whole, []
        fit_rows, held = inner_split(None if self.regression_ else target, len(target), self.inner_pct, self.seed)
        return _subset(whole, fit_rows), [_subset(whole, held)]

    def _n_classes(self) -> int:
        return 1 if self.regression_ or self.classes_ is None else len(self.classes_)

    def _target(self, y: np.ndarray) -> np.ndarray:
        """LightGBM's label: the values, or each row's class as its index in classes_."""
        if self.regression_:
            return np.asarray(y, np.float64)
        assert self.classes_ is not None
        if len(self.classes_) < 2:
            raise DataError("lgbm needs rows of at least two classes to learn from; use more rows or folds")
        return np.searchsorted(self.classes_, y).astype(np.float64)

    def _compact(self) -> None:
        """Drop the booster's training state (gradients and scores per row) by rebuilding it from its trees."""
        import lightgbm as lgb

        self.booster_ = lgb.Booster(model_str=self.booster_.model_to_string(num_iteration=self.best_rounds_))

    def _width(self) -> int:
        return int(self.booster_.num_feature())

    def _raw(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.booster_.predict(images.flat_inputs(X), num_iteration=self.best_rounds_,
                                     num_threads=self.thread_count)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        """(n, classes) float32: the booster's probabilities (binary: [1 - p, p])."""
        p = self._raw(X)
        if p.ndim == 1:
            p = np.column_stack([1.0 - p, p])
        return p.astype(np.float32)

    def _values(self, X: np.ndarray) -> np.ndarray:
        """(n,) float64 predicted values."""
        return np.asarray(self._raw(X), dtype=np.float64)

    def _save(self, folder: Path) -> None:
        """The booster as LightGBM text (its best rounds only) and what kc needs beside it, as JSON."""
        self._check_fitted()
        self.booster_.save_model(str(folder / BOOSTER), num_iteration=self.best_rounds_)
        state = {"regression": self.regression_, "rounds": self.best_rounds_, "stopped_by": self.stopped_by_,
                 "features": self.booster_.num_feature(),
                 "classes": None if self.classes_ is None else self.classes_.tolist()}
        (folder / STATE).write_text(json.dumps(state, indent=2))

    def _load(self, folder: Path) -> None:
        """Read what `save` wrote, after checking every tree points only inside itself and at real features."""
        import lightgbm as lgb

        try:
            state = json.loads((folder / STATE).read_text())
            text = (folder / BOOSTER).read_text(encoding="ascii")
            regression, rounds, n_features = bool(state["regression"]), int(state["rounds"]), int(state["features"])
            classes = None if state["classes"] is None else np.asarray(state["classes"], dtype=np.int64)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{saved_file(folder, BOOSTER)} or {STATE} cannot be read ({exc}); train it again") \
                from None
        problem = check_model_text(text, n_features)
        if problem:
            raise DataError(f"{saved_file(folder, BOOSTER)} {problem}; train it again")
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise DataError(f"{saved_file(folder, BOOSTER)} cannot be read ({str(exc).strip()}); "
                            "train it again") from None
        self.booster_, self.best_rounds_, self.stopped_by_ = booster, rounds, str(state.get("stopped_by", ""))
        self.regression_, self.classes_, self.fitted_ = regression, classes, True


def _subset(whole: Any, rows: np.ndarray) -> Any:
    """The binned rows `rows` of `whole`, without the list of their indices LightGBM keeps beside them (Python ints:
    31 MB for 810,000 rows, while the fit lasts); it reads the list only to build the subset."""
    part = whole.subset(rows).construct()
    part.used_indices = None
    return part


class _Stopper:
    """A LightGBM callback: stop when the inner loss has not improved for `patience` rounds, or at a deadline."""

    order = 30  # after LightGBM's own evaluation has filled in the round's losses

    def __init__(self, patience: int, deadline: float | None):
        self.patience, self.deadline, self.clock = patience, deadline, RoundClock(deadline)
        self.best, self.best_loss, self.reason = 0, np.inf, "rounds"

    def __call__(self, env: Any) -> None:
        import lightgbm as lgb

        if env.evaluation_result_list:
            loss = env.evaluation_result_list[0][2]
            if loss < self.best_loss:
                self.best, self.best_loss = env.iteration, loss
            elif env.iteration - self.best >= self.patience:
                self.reason = "patience"
                raise lgb.callback.EarlyStopException(self.best, env.evaluation_result_list)
        else:
            self.best = env.iteration
        if self.clock.next_overruns():
            self.reason = "time"
            raise lgb.callback.EarlyStopException(self.best, env.evaluation_result_list or [])


_ARRAY = re.compile(r"^(num_leaves|num_cat|split_feature|left_child|right_child|decision_type)=(.*)$", re.M)


def check_model_text(text: str, n_features: int) -> str | None:
    """What is unsafe in a LightGBM text model (None when sound): nodes must point forward inside their tree."""
    header = re.search(r"^max_feature_idx=(\d+)$", text, re.M)
    if header is None or int(header.group(1)) != n_features - 1:
        return f"does not describe a model of {n_features} features"
    trees = text.split("\nTree=")[1:]
    if not trees:
        return "holds no trees"
    for tree in trees:
        fields = {k: v.split() for k, v in _ARRAY.findall(tree.split("\n\n")[0])}
        try:
            leaves = int(fields["num_leaves"][0])
            if int(fields.get("num_cat", ["0"])[0]) != 0:
                return "holds categorical splits, which kc never trains"
            if leaves == 1:
                continue
            feature, left, right = (np.array(fields[k], dtype=np.int64) for k in
                                    ("split_feature", "left_child", "right_child"))
            decision = np.array(fields["decision_type"], dtype=np.int64)
        except (KeyError, IndexError, ValueError):
            return "holds a tree kc cannot read"
        inner = leaves - 1
        if not len(feature) == len(left) == len(right) == len(decision) == inner:
            return "holds a tree whose arrays disagree in length"
        nodes = np.arange(inner)
        for kids in (left, right):
            to_node, to_leaf = kids >= 0, kids < 0
            if not (np.all(kids[to_node] > nodes[to_node]) and np.all(kids[to_node] < inner)
                    and np.all(~kids[to_leaf] < leaves)):
                return "holds trees whose nodes point outside them"
        if np.any((feature < 0) | (feature >= n_features)) or np.any(decision & 1):
            return "holds splits on features the model does not have"
    return None
