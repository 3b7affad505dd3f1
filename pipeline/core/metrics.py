"""The metric registry: how a competition scores predictions, which way is better, what each metric needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.core.errors import UsageError

# what a metric scores: class labels, class probabilities, or regression values
NEEDS = ("labels", "proba", "values")


def _accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y) == np.asarray(pred)))


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y) == 1, np.asarray(pred) == 1  # class code 1 is the positive class
    tp = float(np.sum(y & pred))
    return 2 * tp / max(1.0, float(np.sum(y) + np.sum(pred)))


def _roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, proba[:, 1]))


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    p = np.clip(proba[np.arange(len(y)), np.asarray(y, dtype=np.int64)], 1e-15, 1.0)
    return float(-np.mean(np.log(p)))


def _rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - np.asarray(y, np.float64)) ** 2)))


def _rmse_log(y: np.ndarray, pred: np.ndarray) -> float:
    return _rmse(np.log(np.asarray(y, np.float64)), np.log(np.clip(np.asarray(pred, np.float64), 1e-12, None)))


def _mae(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred, np.float64) - np.asarray(y, np.float64))))


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
        return np.log(y) if self.log_target else y

    def from_model(self, values: np.ndarray) -> np.ndarray:
        """Model outputs back on the target's scale."""
        return np.exp(values) if self.log_target else values


_CLASSES = ("binary", "multiclass")
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", "accuracy", True, "labels", _CLASSES, _accuracy, percent=True),
    Metric("f1", "F1 score", True, "labels", ("binary",), _f1),
    Metric("roc-auc", "ROC AUC", True, "proba", ("binary",), _roc_auc),
    Metric("log-loss", "log loss", False, "proba", _CLASSES, _log_loss),
    Metric("rmse", "RMSE", False, "values", ("regression",), _rmse),
    Metric("rmse-log", "RMSE of logs", False, "values", ("regression",), _rmse_log, log_target=True),
    Metric("mae", "MAE", False, "values", ("regression",), _mae),
)}


def get(name: str, task: str | None = None) -> Metric:
    """A metric by name, checked against the task when given; unknown or unfitting names list the choices."""
    metric = METRICS.get(name)
    if metric is None:
        raise UsageError(f"unknown metric '{name}'; kc knows: {', '.join(METRICS)}")
    if task is not None and task not in metric.tasks:
        fits = ", ".join(n for n, m in METRICS.items() if task in m.tasks)
        raise UsageError(f"metric '{name}' does not score {task} tasks; use one of: {fits}")
    return metric


def default_for(task: str) -> str:
    """The metric kc assumes when a competition does not say: accuracy for classes, RMSE for values."""
    return "rmse" if task == "regression" else "accuracy"
