"""A model's outputs as kc scores and submits them: class probabilities or values, labels, written probabilities."""

from __future__ import annotations

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError
from pipeline.models.base import Model


def model_target(comp: Competition, y: np.ndarray) -> np.ndarray:
    """What a model learns: class codes, or the values on the metric's scale (log prices for RMSE of logs)."""
    return y if comp.is_classification else np.asarray(comp.scorer.to_model(y), dtype=np.float64)


def outputs(comp: Competition, model: Model, X: np.ndarray) -> np.ndarray:
    """A model's raw outputs: (n, classes) probabilities over all the competition's classes, or (n,) model values."""
    if not comp.is_classification:
        values = np.asarray(model.predict_values(X), dtype=np.float64)
        _check_finite(model, values)
        return values
    proba = model.predict_proba(X)
    _check_finite(model, proba)
    full = np.zeros((len(proba), len(comp.classes)), np.float32)
    full[:, np.asarray(model.classes_, dtype=np.int64)] = proba
    return full


def _check_finite(model: Model, out: np.ndarray) -> None:
    if not np.isfinite(out).all():
        raise DataError(f"the {model.name} model produced NaN or infinite outputs: training diverged; "
                        "try a smaller --lr")


def predictions(comp: Competition, out: np.ndarray) -> np.ndarray:
    """Outputs as the submission wants them: class codes, or values on the target's scale."""
    if comp.targets and comp.is_classification:  # (n, targets) probabilities of 1 -> (n, targets) codes
        return (np.asarray(out) >= 0.5).astype(np.int64)
    if comp.is_classification:
        return np.argmax(out, axis=1).astype(np.int64)
    values = np.asarray(comp.scorer.from_model(out), dtype=np.float64)
    return values if comp.value_floor is None else np.maximum(values, comp.value_floor)


PROBA_FLOOR = 1e-6  # written probabilities stay this far from 0 and 1: one confident miss costs log loss ~14, not 35


def submitted(comp: Competition, out: np.ndarray) -> np.ndarray:
    """Outputs as the submission writes them: labels or values, or clipped probabilities whose rows sum to 1."""
    if not comp.writes_proba:
        return predictions(comp, out)
    if comp.targets:  # (n, targets) probabilities of 1, each column on its own
        return np.clip(np.asarray(out, np.float64), PROBA_FLOOR, 1 - PROBA_FLOOR)
    proba = np.clip(np.asarray(out, np.float64), PROBA_FLOOR, None)
    proba /= proba.sum(axis=1, keepdims=True)
    return np.clip(proba, PROBA_FLOOR, 1 - PROBA_FLOOR)


def score(comp: Competition, y: np.ndarray, out: np.ndarray) -> float:
    """The competition's metric of outputs against true targets (codes or values on the target's scale)."""
    metric = comp.scorer
    return metric.score(y, out if metric.needs == "proba" else predictions(comp, out))
