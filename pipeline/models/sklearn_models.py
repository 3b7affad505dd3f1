"""scikit-learn baselines beside kc's own models, saved with skops and loaded only through an allow-list.

A run folder may come from anywhere (a shared zip, a planted file), so loading must never run code:
pickle would, skops does not. skops itself trusts plain scikit-learn estimators and numpy arrays; the
few extra types a model needs are listed in its `trusted` (found with `skops.io.get_untrusted_types` on
freshly fitted estimators of both tasks), and the tree arrays they carry are bounds-checked after loading,
because scikit-learn indexes them without checks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.core.errors import DataError, UsageError
from pipeline.models.base import EpochCallback, Model, saved_file, saved_in
from pipeline.pixels import images

ESTIMATOR = "estimator.skops"
# scikit-learn's torch shim, which skops' import would load (with torch, ~500 MB and seconds) only to list estimators
_TORCH_SHIM = "sklearn.externals.array_api_compat.torch"
RANGE = "range.npz"  # sk-ridge with clip: the input range of the rows it was fitted on
TREE = "sklearn.tree._tree.Tree"
TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


def _skops() -> Any:
    """skops.io, imported without torch: while skops lists scikit-learn's estimators, its torch shim is a stand-in."""
    import sys
    import types

    if "skops.io" in sys.modules or _TORCH_SHIM in sys.modules:
        import skops.io

        return skops.io
    sys.modules[_TORCH_SHIM] = types.ModuleType(_TORCH_SHIM)
    try:
        import skops.io
    finally:
        sys.modules.pop(_TORCH_SHIM, None)  # a later import of the shim (torch arrays in sklearn) gets the real one
    return skops.io


@dataclasses.dataclass
class _Sklearn(Model):
    """Wraps one scikit-learn estimator in kc's protocol."""

    trusted: ClassVar[tuple[str, ...]] = ()  # types beyond skops' defaults that this model's file may hold
    estimators: ClassVar[tuple[str, ...]] = ()  # names of the scikit-learn classes it may wrap

    estimator_: Any = dataclasses.field(default=None, init=False, repr=False)

    def _make(self) -> Any:
        raise NotImplementedError

    def _fit(self, est: Any, x: np.ndarray, y: np.ndarray, xv: np.ndarray | None, yv: np.ndarray | None) -> Any:
        return est.fit(x, y)

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> _Sklearn:
        """Fit the estimator on flattened inputs."""
        self._start(y)
        xv = images.flat_inputs(X_valid) if X_valid is not None and y_valid is not None else None
        self.estimator_ = self._fit(self._make(), images.flat_inputs(X), y, xv, y_valid)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The estimator's class probabilities."""
        self._check_fitted()
        return self.estimator_.predict_proba(images.flat_inputs(X)).astype(np.float32)

    def predict_values(self, X: np.ndarray) -> np.ndarray:
        """The estimator's predicted values."""
        self._check_fitted()
        return np.asarray(self.estimator_.predict(images.flat_inputs(X)), dtype=np.float64)

    def save(self, folder: Path) -> None:
        """Write the fitted estimator with skops (no pickle)."""
        skops_io = _skops()
        self._check_fitted()
        skops_io.dump(self.estimator_, folder / ESTIMATOR)

    def load(self, folder: Path) -> _Sklearn:
        """Read the estimator written by `save`, refusing any type outside the allow-list; never runs code."""
        from sklearn.base import is_regressor

        skops_io = _skops()
        path, run, named = folder / ESTIMATOR, saved_in(folder), saved_file(folder, ESTIMATOR)
        if not path.is_file():
            old = (folder / "estimator.pkl").exists()
            why = " (only an old pickled estimator.pkl, which kc no longer opens)" if old else ""
            raise DataError(f"{run} has no {ESTIMATOR}{why}; train it again")
        try:
            untrusted = [t for t in skops_io.get_untrusted_types(file=path) if t not in self.trusted]
        except Exception as e:
            raise DataError(f"{named} cannot be read ({_first_line(e)}); train it again") from None
        if untrusted:
            types = ", ".join(untrusted)
            raise DataError(f"{named} holds types kc does not trust ({types}); train it again")
        try:
            est = skops_io.load(path, trusted=list(self.trusted))
        except Exception as e:
            raise DataError(f"{named} cannot be read ({_first_line(e)}); train it again") from None
        kind = type(est)
        if not kind.__module__.startswith("sklearn.") or kind.__name__ not in self.estimators:
            raise DataError(f"{named} holds a {kind.__name__}, not a {self.name} estimator; train it again")
        if not _trees_in_bounds(est):
            raise DataError(f"{named} holds trees whose nodes point outside them; train it again")
        self.estimator_ = est
        self.regression_ = is_regressor(est)
        self.classes_ = None if self.regression_ else np.asarray(est.classes_)
        self.fitted_ = True
        return self


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _nodes_ok(left: np.ndarray, right: np.ndarray, feature: np.ndarray, leaf: np.ndarray, n_features: int) -> bool:
    """Every split node's children come after it and inside the array, and it splits on a real input column."""
    n = len(left)
    inner = np.flatnonzero(~leaf)
    kids_ok = all(np.all((k[inner] > inner) & (k[inner] < n)) for k in (left.astype(np.int64), right.astype(np.int64)))
    return n > 0 and kids_ok and bool(np.all((feature[inner] >= 0) & (feature[inner] < n_features)))


def _trees_in_bounds(est: Any) -> bool:
    """Whether a forest's or a boosted model's trees index only their own nodes and the model's features."""
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    d = getattr(est, "n_features_in_", None)
    if not isinstance(d, int | np.integer):
        return False
    if hasattr(est, "estimators_"):  # a random forest
        for tree in est.estimators_:
            if type(tree) not in (DecisionTreeClassifier, DecisionTreeRegressor):
                return False
            t = tree.tree_
            if t.n_features != d or len(t.value) != t.node_count:
                return False
            if not _nodes_ok(t.children_left, t.children_right, t.feature, t.children_left == -1, d):
                return False
    for round_ in getattr(est, "_predictors", []):  # boosting: a list of trees per iteration
        for p in round_:
            nodes = p.nodes
            if nodes.dtype != PREDICTOR_RECORD_DTYPE or np.any(nodes["is_categorical"]):
                return False
            if not _nodes_ok(nodes["left"], nodes["right"], nodes["feature_idx"], nodes["is_leaf"] != 0, d):
                return False
    return True


@dataclasses.dataclass
class SkLogistic(_Sklearn):
    """scikit-learn LogisticRegression (L-BFGS)."""

    name: ClassVar[str] = "sk-logistic"
    estimators: ClassVar[tuple[str, ...]] = ("LogisticRegression",)
    space: ClassVar[dict[str, str]] = {"C": "1e-3:100:log"}
    C: float = 1.0
    max_iter: int = 200

    def _make(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=self.max_iter)


@dataclasses.dataclass
class SkRidge(_Sklearn):
    """scikit-learn Ridge (or ElasticNet): least squares with a penalty `alpha` on the weights.

    The penalty is alpha * ((1 - l1_ratio) * |w|^2 + 2 * l1_ratio * |w|_1) on the sum of squared errors, so
    `l1_ratio` 0 is Ridge(alpha) and 1 the lasso, Lasso(alpha / n_rows), on the same scale. With `trim`, a second
    fit leaves out the training rows the first one misses by more than `trim` robust standard deviations; with
    `clip`, inputs are clipped into the range of the rows fitted, so the line never runs past what it saw.
    """

    name: ClassVar[str] = "sk-ridge"
    tasks: ClassVar[tuple[str, ...]] = ("regression",)
    estimators: ClassVar[tuple[str, ...]] = ("Ridge", "ElasticNet")
    space: ClassVar[dict[str, str]] = {"alpha": "1e-3:1000:log", "l1_ratio": "0|0.5|1", "trim": "0|3|4|6"}
    alpha: float = 1.0
    l1_ratio: float = 0.0  # 0: Ridge; up to 1: ElasticNet, 1 = lasso
    trim: float = 0.0  # 0: one fit on every row
    clip: bool = False

    low_: np.ndarray | None = dataclasses.field(default=None, init=False, repr=False)  # (d,) range of rows fitted
    high_: np.ndarray | None = dataclasses.field(default=None, init=False, repr=False)

    def _make(self, rows: int = 1) -> Any:
        from sklearn.linear_model import ElasticNet, Ridge

        if not 0 <= self.l1_ratio <= 1:
            raise UsageError(f"option l1_ratio={self.l1_ratio}: expected a number from 0 (ridge) to 1 (lasso)")
        if self.l1_ratio == 0:
            return Ridge(alpha=self.alpha)
        return ElasticNet(alpha=self.alpha / rows, l1_ratio=self.l1_ratio, max_iter=10_000)

    def _fit(self, est: Any, x: np.ndarray, y: np.ndarray, xv: np.ndarray | None, yv: np.ndarray | None) -> Any:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():  # kc prints nothing from a library call; the score says how it went
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = self._make(len(x)).fit(x, y)
            if self.trim > 0:
                keep = inliers(y - est.predict(x), self.trim)
                x, y = x[keep], y[keep]
                est = self._make(len(x)).fit(x, y)
        self.low_, self.high_ = (x.min(0), x.max(0)) if self.clip else (None, None)
        return est

    def predict_values(self, X: np.ndarray) -> np.ndarray:
        """The fitted line's values, with inputs clipped into the fitted rows' range when `clip` is on."""
        self._check_fitted()
        x = images.flat_inputs(X)
        if self.clip:
            x = np.clip(x, self.low_, self.high_)
        return np.asarray(self.estimator_.predict(x), dtype=np.float64)

    def save(self, folder: Path) -> None:
        """The estimator (skops), and the fitted rows' range as plain arrays when `clip` is on."""
        super().save(folder)
        if self.clip:
            np.savez(folder / RANGE, low=self.low_, high=self.high_)

    def load(self, folder: Path) -> SkRidge:
        """Read what `save` wrote; arrays only, never pickles."""
        super().load(folder)
        if self.clip:
            try:
                with np.load(folder / RANGE, allow_pickle=False) as saved:
                    self.low_, self.high_ = saved["low"], saved["high"]
            except (OSError, KeyError, ValueError) as e:
                raise DataError(f"{saved_file(folder, RANGE)} cannot be read ({_first_line(e)}); train it again") \
                    from None
            d = self.estimator_.n_features_in_
            if self.low_.shape != (d,) or self.high_.shape != (d,):
                raise DataError(f"{saved_file(folder, RANGE)} does not match its estimator; train it again")
        return self


def inliers(residuals: np.ndarray, k: float) -> np.ndarray:
    """(n,) bool: residuals within k robust standard deviations (1.4826 x median absolute deviation) of their median."""
    centre = np.median(residuals)
    spread = 1.4826 * np.median(np.abs(residuals - centre))
    return np.abs(residuals - centre) <= k * spread if spread > 0 else np.ones(len(residuals), bool)


@dataclasses.dataclass
class SkForest(_Sklearn):
    """scikit-learn random forest: RandomForestClassifier for classes, RandomForestRegressor for values."""

    name: ClassVar[str] = "sk-forest"
    tasks: ClassVar[tuple[str, ...]] = ("binary", "multiclass", "regression")
    scaled: ClassVar[bool] = False
    trusted: ClassVar[tuple[str, ...]] = (TREE,)
    estimators: ClassVar[tuple[str, ...]] = ("RandomForestClassifier", "RandomForestRegressor")
    space: ClassVar[dict[str, str]] = {"n_estimators": "50:500:log", "max_depth": "0|4|8|16",
                                       "min_samples_leaf": "1:20"}
    n_estimators: int = 200
    max_depth: int = 0  # 0 = unlimited
    min_samples_leaf: int = 1
    seed: int = 0

    def _make(self) -> Any:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestRegressor if self.regression_ else RandomForestClassifier
        return cls(n_estimators=self.n_estimators, max_depth=self.max_depth or None,
                   min_samples_leaf=self.min_samples_leaf, random_state=self.seed, n_jobs=-1)

    def _fit(self, est: Any, x: np.ndarray, y: np.ndarray, xv: np.ndarray | None, yv: np.ndarray | None) -> Any:
        # trees grow in parallel; predictions then sum the trees in order, so a model always gives the same answer
        return est.fit(x, y).set_params(n_jobs=1)


@dataclasses.dataclass
class SkGBM(_Sklearn):
    """scikit-learn HistGradientBoosting{Classifier,Regressor}; defaults suit tables of a few thousand rows."""

    name: ClassVar[str] = "sk-gbm"
    tasks: ClassVar[tuple[str, ...]] = ("binary", "multiclass", "regression")
    scaled: ClassVar[bool] = False
    trusted: ClassVar[tuple[str, ...]] = (TREE_PREDICTOR,)
    estimators: ClassVar[tuple[str, ...]] = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
    space: ClassVar[dict[str, str]] = {"learning_rate": "0.01:0.3:log", "max_iter": "50:500:log",
                                       "max_leaf_nodes": "7:63:log", "min_samples_leaf": "2:50:log",
                                       "l2_regularization": "1e-3:10:log", "max_features": "0.1:1"}
    learning_rate: float = 0.05
    max_iter: int = 500  # boosting rounds
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 10
    l2_regularization: float = 1.0
    max_features: float = 1.0  # share of the features each split may look at, drawn afresh at every node
    patience: int = 0  # stop after this many rounds without validation gain; 0 = run all max_iter
    seed: int = 0

    def _make(self) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        if not 0 < self.max_features <= 1:
            raise UsageError(f"option max_features={self.max_features}: expected a share above 0, at most 1")
        cls = HistGradientBoostingRegressor if self.regression_ else HistGradientBoostingClassifier
        return cls(learning_rate=self.learning_rate, max_iter=self.max_iter, max_leaf_nodes=self.max_leaf_nodes,
                   min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
                   max_features=self.max_features, early_stopping=self.patience > 0,
                   n_iter_no_change=max(self.patience, 1), random_state=self.seed)

    def _fit(self, est: Any, x: np.ndarray, y: np.ndarray, xv: np.ndarray | None, yv: np.ndarray | None) -> Any:
        # with patience, stop on the run's own validation set when there is one (else 10% held out of train)
        if self.patience > 0 and xv is not None:
            return est.fit(x, y, X_val=xv, y_val=yv)
        return est.fit(x, y)
