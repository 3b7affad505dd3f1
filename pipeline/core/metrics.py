"""The metric registry: how a competition scores predictions, which way is better, what each metric needs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.core.errors import UsageError

if TYPE_CHECKING:  # numpy is imported where a metric runs, so `kc --help` (which reads this registry) stays light
    import numpy as np

# what a metric scores: class labels, class probabilities, or regression values
NEEDS = ("labels", "proba", "values")


def _accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    import numpy as np

    return float(np.mean(np.asarray(y) == np.asarray(pred)))


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    import numpy as np

    y, pred = np.asarray(y) == 1, np.asarray(pred) == 1  # class code 1 is the positive class
    tp = float(np.sum(y & pred))
    return 2 * tp / max(1.0, float(np.sum(y) + np.sum(pred)))


def _sk(name: str, **options: object) -> Callable[[np.ndarray, np.ndarray], float]:
    """A scikit-learn metric by name, called with `options` (imported when first used)."""
    def fn(y: np.ndarray, pred: np.ndarray) -> float:
        from sklearn import metrics

        return float(getattr(metrics, name)(y, pred, **options))

    return fn


def _roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """ROC AUC from the probabilities of classes[1]; NaN on rows of one class (see `_auc_column`)."""
    return _auc_column(y, proba[:, 1])


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Kaggle's (multi-class) log loss: rows rescaled to sum to 1, then clipped to [1e-15, 1 - 1e-15]."""
    import numpy as np

    p = np.asarray(proba, np.float64)
    p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-15, None)
    p = np.clip(p[np.arange(len(y)), np.asarray(y, dtype=np.int64)], 1e-15, 1 - 1e-15)
    return float(-np.mean(np.log(p)))


def _rmse(y: np.ndarray, pred: np.ndarray) -> float:
    import numpy as np

    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - np.asarray(y, np.float64)) ** 2)))


def _rmse_log(y: np.ndarray, pred: np.ndarray) -> float:
    import numpy as np

    return _rmse(np.log(np.asarray(y, np.float64)), np.log(np.clip(np.asarray(pred, np.float64), 1e-12, None)))


def _rmsle(y: np.ndarray, pred: np.ndarray) -> float:
    """RMSE of log1p: zero-safe, predictions below zero count as zero."""
    import numpy as np

    return _rmse(np.log1p(np.asarray(y, np.float64)), np.log1p(np.clip(np.asarray(pred, np.float64), 0, None)))


def _mae(y: np.ndarray, pred: np.ndarray) -> float:
    import numpy as np

    return float(np.mean(np.abs(np.asarray(pred, np.float64) - np.asarray(y, np.float64))))


def _mape(y: np.ndarray, pred: np.ndarray) -> float:
    import numpy as np

    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    return float(np.mean(np.abs(pred - y) / np.maximum(np.abs(y), np.finfo(np.float64).eps)))


def _smape(y: np.ndarray, pred: np.ndarray) -> float:
    """Kaggle's SMAPE in percent: 100 * mean(2|p - y| / (|y| + |p|)), a row where both are 0 counting 0."""
    import numpy as np

    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    denominator = np.abs(y) + np.abs(pred)
    ratio = np.where(denominator == 0, 0.0, 2 * np.abs(pred - y) / np.where(denominator == 0, 1, denominator))
    return float(100 * np.mean(ratio))


def _auc_column(y: np.ndarray, proba: np.ndarray) -> float:
    """ROC AUC of one 0/1 target from the probability of 1; NaN on rows of one class, which rank nothing."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, proba)) if len(np.unique(y)) == 2 else math.nan


def _log_loss_column(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary log loss of one 0/1 target from the probability of 1, clipped to [1e-15, 1 - 1e-15] as Kaggle does."""
    import numpy as np

    p = np.clip(np.asarray(proba, np.float64), 1e-15, 1 - 1e-15)
    y = np.asarray(y, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _columnwise(fn: Callable[[np.ndarray, np.ndarray], float],
                undefined: bool = False) -> Callable[[np.ndarray, np.ndarray], float]:
    """A per-column metric averaged over the columns of (n, targets) truths and predictions; `undefined`: a column
    the metric gives no number (an AUC of rows of one class) is left out, and NaN comes only when every one is."""
    def mean(y: np.ndarray, pred: np.ndarray) -> float:
        import numpy as np

        y, pred = np.asarray(y), np.asarray(pred)
        if y.ndim != 2 or y.shape != pred.shape:
            raise ValueError(f"a column-wise metric scores (rows, targets) arrays, not {y.shape} and {pred.shape}")
        scores = np.array([fn(y[:, j], pred[:, j]) for j in range(y.shape[1])])
        if undefined:
            scores = scores[~np.isnan(scores)]
        return float(np.mean(scores)) if len(scores) else math.nan

    return mean


def _map_at_3(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean average precision at 3 with one true class per row: 1, 1/2 or 1/3 when it is ranked 1st, 2nd or 3rd."""
    import numpy as np

    top = np.argsort(-np.asarray(proba), axis=1, kind="stable")[:, :3]
    hits = top == np.asarray(y, dtype=np.int64)[:, None]
    return float(np.mean((hits / np.arange(1, 4)[None, : top.shape[1]]).sum(axis=1)))


@dataclass(frozen=True)
class Metric:
    """One scoring rule: its name, direction, what it needs, and the tasks it fits."""

    name: str
    title: str
    higher_is_better: bool
    needs: str  # one of NEEDS
    tasks: tuple[str, ...]
    fn: Callable[[np.ndarray, np.ndarray], float]
    log_target: bool = False  # models learn log(y): the metric compares logs, so errors are relative
    percent: bool = False  # shown as a percentage
    kaggle: tuple[str, ...] = ()  # Kaggle's names for it (matched ignoring case, spaces, hyphens and underscores)
    log1p_target: bool = False  # models learn log1p(y): targets must be >= 0 (RMSLE)
    # a column-wise mean over several targets: the metric each column is scored by (its `needs` is per column:
    # "proba" means (n, targets) probabilities of 1, "values" (n, targets) values); "" for one-target metrics
    per_column: str = ""

    @property
    def columnwise(self) -> bool:
        """Whether it scores several target columns, as the mean of a per-column metric."""
        return bool(self.per_column)

    def score(self, y_true: np.ndarray, prediction: np.ndarray) -> float:
        """Score predictions on the target's own scale (labels as class codes, probabilities as (n, k))."""
        return self.fn(y_true, prediction)

    def sort_key(self, score: float) -> float:
        """A key that sorts the best score first (NaN last)."""
        if score != score:  # NaN
            return float("inf")
        return -score if self.higher_is_better else score

    def better(self, a: float, b: float) -> bool:
        """Whether score `a` beats score `b`."""
        return self.sort_key(a) < self.sort_key(b)

    def format(self, score: float | None) -> str:
        """The score as people read it: accuracy as a percentage, errors with four significant decimals."""
        if score is None or score != score:
            return "-"
        return f"{100 * score:.2f}%" if self.percent else f"{score:.4f}"

    def to_model(self, y: np.ndarray) -> np.ndarray:
        """The target a regression model should learn for this metric (log prices for RMSE of logs)."""
        import numpy as np

        if self.log1p_target:
            return np.log1p(y)
        return np.log(y) if self.log_target else y

    def from_model(self, values: np.ndarray) -> np.ndarray:
        """Model outputs back on the target's scale."""
        import numpy as np

        if self.log1p_target:
            return np.clip(np.expm1(values), 0, None)
        return np.exp(values) if self.log_target else values

    def valid_values(self, values: np.ndarray) -> np.ndarray:
        """(n,) bool: which regression values this metric can score (finite; positive or >= 0 where it takes logs)."""
        import numpy as np

        values = np.asarray(values, np.float64)
        ok = np.isfinite(values)
        if self.log_target:
            ok &= values > 0
        if self.log1p_target:
            ok &= values >= 0
        return ok

    @property
    def value_rule(self) -> str:
        """What `valid_values` accepts, as an error message says it."""
        if self.log_target:
            return "a positive number (the metric takes logs)"
        if self.log1p_target:
            return "a number >= 0 (the metric takes log(1 + value))"
        return "a finite number"


_CLASSES = ("binary", "multiclass")
_VALUES = ("regression",)
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", "accuracy", True, "labels", _CLASSES, _accuracy, percent=True,
           kaggle=("CategorizationAccuracy", "Categorization Accuracy", "Accuracy Score", "Multiclass Accuracy")),
    Metric("f1", "F1 score", True, "labels", ("binary",), _f1, kaggle=("F1 Score", "F-Score", "FScore", "F1Score")),
    Metric("f1-macro", "macro F1", True, "labels", _CLASSES, _sk("f1_score", average="macro"),
           kaggle=("Macro F1", "MacroFScore", "F1 Macro", "Macro F1 Score")),
    Metric("f1-micro", "micro F1", True, "labels", _CLASSES, _sk("f1_score", average="micro"),
           kaggle=("Micro F1", "MicroFScore", "F1 Micro", "Micro F1 Score")),
    Metric("mcc", "Matthews correlation", True, "labels", _CLASSES, _sk("matthews_corrcoef"),
           kaggle=("Matthews Correlation Coefficient", "MatthewsCorrelationCoefficient", "MCC")),
    Metric("qwk", "quadratic weighted kappa", True, "labels", _CLASSES, _sk("cohen_kappa_score", weights="quadratic"),
           kaggle=("Quadratic Weighted Kappa", "QuadraticWeightedKappa", "QWK")),
    Metric("roc-auc", "ROC AUC", True, "proba", ("binary",), _roc_auc,
           kaggle=("AUC", "ROC AUC", "AUCROC", "Area Under Receiver Operating Characteristic Curve", "RocAuc")),
    Metric("log-loss", "log loss", False, "proba", _CLASSES, _log_loss,
           kaggle=("LogLoss", "Log Loss", "Binary Log Loss", "MulticlassLoss", "Multi Class Log Loss",
                   "Multiclass Logarithmic Loss", "Multi-class logarithmic loss", "MultiLogLoss", "mlogloss")),
    Metric("map@3", "MAP@3", True, "proba", ("multiclass",), _map_at_3,
           kaggle=("MAP@3", "Mean Average Precision @ 3", "MeanAveragePrecisionAt3")),
    Metric("rmse", "RMSE", False, "values", _VALUES, _rmse, kaggle=("Root Mean Squared Error", "RootMeanSquaredError")),
    Metric("rmse-log", "RMSE of logs", False, "values", _VALUES, _rmse_log, log_target=True,
           kaggle=("RMSE of logs", "Root Mean Squared Error of logs")),
    Metric("rmsle", "RMSLE", False, "values", _VALUES, _rmsle, log1p_target=True,
           kaggle=("Root Mean Squared Logarithmic Error", "RootMeanSquaredLogarithmicError")),
    Metric("mae", "MAE", False, "values", _VALUES, _mae, kaggle=("Mean Absolute Error", "MeanAbsoluteError")),
    Metric("mape", "MAPE", False, "values", _VALUES, _mape,
           kaggle=("Mean Absolute Percentage Error", "MeanAbsolutePercentageError")),
    Metric("smape", "SMAPE", False, "values", _VALUES, _smape,
           kaggle=("Symmetric Mean Absolute Percentage Error", "SymmetricMeanAbsolutePercentageError")),
    Metric("r2", "R²", True, "values", _VALUES, _sk("r2_score"),
           kaggle=("R2", "R-squared", "R2 Score", "Coefficient of Determination")),
    # several target columns, each scored by its own metric and the scores averaged (COVID19 forecasting, MoA, Jigsaw)
    Metric("mean-rmse", "mean column-wise RMSE", False, "values", _VALUES, _columnwise(_rmse), per_column="rmse",
           kaggle=("MCRMSE", "Mean Columnwise Root Mean Squared Error", "Columnwise RMSE")),
    Metric("mean-rmsle", "mean column-wise RMSLE", False, "values", _VALUES, _columnwise(_rmsle), log1p_target=True,
           per_column="rmsle", kaggle=("MCRMSLE", "Mean Columnwise Root Mean Squared Logarithmic Error",
                                       "Columnwise RMSLE")),
    Metric("mean-mae", "mean column-wise MAE", False, "values", _VALUES, _columnwise(_mae), per_column="mae",
           kaggle=("MCMAE", "Mean Columnwise Mean Absolute Error", "Columnwise MAE")),
    Metric("mean-auc", "mean column-wise AUC", True, "proba", ("binary",), _columnwise(_auc_column, undefined=True),
           per_column="roc-auc", kaggle=("Mean Columnwise AUC", "MCAUC", "Mean Columnwise ROC AUC", "Columnwise AUC",
                                         "Mean Column-wise Area Under ROC Curve")),
    Metric("mean-log-loss", "mean column-wise log loss", False, "proba", ("binary",), _columnwise(_log_loss_column),
           per_column="log-loss", kaggle=("Mean Columnwise Log Loss", "MCLogLoss", "Columnwise Log Loss",
                                          "Mean Columnwise Binary Log Loss", "Multilabel Log Loss")),
)}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == "@")


_BY_KAGGLE_NAME = {_key(alias): m.name for m in METRICS.values() for alias in (m.name, m.title, *m.kaggle)}


def canonical(name: str) -> str | None:
    """kc's name for a metric given by kc's short name or Kaggle's own ("Root Mean Squared Logarithmic Error")."""
    if name in METRICS:
        return name
    return _BY_KAGGLE_NAME.get(_key(name))


def _near(name: str) -> str:
    """' (did you mean rmse?)' for a name close to one kc knows (its own or Kaggle's), else ''."""
    import difflib

    close = difflib.get_close_matches(_key(str(name)), list(_BY_KAGGLE_NAME), n=1, cutoff=0.75)
    return f" (did you mean {_BY_KAGGLE_NAME[close[0]]}?)" if close else ""


def fitting(task: str, several: bool = False) -> list[str]:
    """The names of kc's metrics that score `task`: for one target, or (`several`) column-wise means."""
    return [n for n, m in METRICS.items() if task in m.tasks and m.columnwise == several]


def choices(task: str, several: bool = False) -> list[str]:
    """What `--metric` may name for `task`: its metrics, or for several targets those with a column-wise mean (which
    they then mean) and the column-wise means themselves."""
    if not several:
        return fitting(task)
    return [*(n for n in fitting(task) if for_columns(n) is not None), *fitting(task, several=True)]


def get(name: str, task: str | None = None, several: bool = False) -> Metric:
    """A metric by name, checked against the task when given; unknown or unfitting names list the choices."""
    known = canonical(name) if isinstance(name, str) else None
    metric = METRICS.get(known) if known else None
    if metric is None:
        raise UsageError(f"unknown metric '{name}'{_near(name)}; kc knows: {', '.join(METRICS)}")
    if task is not None and task not in metric.tasks:
        raise UsageError(f"metric '{name}' does not score {task} tasks; use one of: "
                         f"{', '.join(choices(task, several))}")
    return metric


def for_columns(name: str) -> str | None:
    """The column-wise mean of a one-target metric (rmsle -> mean-rmsle), or the name itself if column-wise; else
    None."""
    if METRICS[name].columnwise:
        return name
    return next((m.name for m in METRICS.values() if m.per_column == name), None)


def default_for(task: str, proba: bool = False, several: bool = False) -> str:
    """The metric kc assumes when a competition does not say: accuracy (log loss for probabilities), or RMSE; their
    column-wise means (log loss of each 0/1 target, RMSE) for several targets."""
    if several:
        return "mean-rmse" if task == "regression" else "mean-log-loss"
    if task == "regression":
        return "rmse"
    return "log-loss" if proba else "accuracy"
