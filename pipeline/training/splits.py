"""Which rows each fit holds out: strata of the target, a stratified split, or K stratified folds."""

from __future__ import annotations

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.dataset import rows_except
from pipeline.core.errors import DataError, UsageError
from pipeline.training.records import TrainConfig


def strata(comp: Competition, y: np.ndarray, bins: int = 10, k: int = 0) -> np.ndarray:
    """What a split stratifies on: the class codes, or the target's quantile bins for regression (for `k` folds,
    fewer bins of equal size by rank when a bin would hold under k rows: a few rows, or values that repeat; a
    single split, k 0, needs two a bin, one to hold out and one to learn)."""
    if comp.is_classification:
        return y
    k = max(k, 2)
    edges = np.quantile(y, np.linspace(0, 1, bins + 1)[1:-1])
    groups = np.searchsorted(edges, y, side="right")
    counts = np.bincount(groups)
    if counts[counts > 0].min() < k:
        fewer = max(1, min(bins, len(y) // k))
        groups = np.argsort(np.argsort(y, kind="stable"), kind="stable") * fewer // len(y)
    return groups


def split(groups: np.ndarray, valid_pct: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train indices, valid indices), reproducible from the seed."""
    rng = np.random.default_rng(seed)
    valid = []
    for label in np.unique(groups):
        members = rng.permutation(np.flatnonzero(groups == label))
        take = min(len(members) - 1, max(1, round(valid_pct * len(members))))
        valid.append(members[:take])
    valid_idx = np.sort(np.concatenate(valid)).astype(np.int64)
    train_idx = rows_except(len(groups), valid_idx)
    if not len(valid_idx):  # every class (or stratum) has one row: holding one out would leave it unlearnt
        raise DataError(f"train has {len(groups)} rows: too few to hold any out and score a model on (a class needs "
                        "two rows, one learnt and one scored); add rows")
    return train_idx, valid_idx


def folds(groups: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """k stratified folds of indices."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(k)]
    for label in np.unique(groups):
        for i, index in enumerate(rng.permutation(np.flatnonzero(groups == label))):
            parts[i % k].append(int(index))
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


def held_out(comp: Competition, cfg: TrainConfig, y: np.ndarray, groups: np.ndarray | None = None) -> list[np.ndarray]:
    """The rows each fit holds out: K stratified folds, or one split. `groups`: what they stratify on, when not the
    target's own strata."""
    groups = strata(comp, y, k=cfg.folds or 0) if groups is None else groups
    if not cfg.folds:
        return [split(groups, cfg.valid_pct, cfg.seed)[1]]
    check_folds(cfg.folds, len(y))
    smallest = int(np.bincount(np.unique(groups, return_inverse=True)[1]).min())
    if comp.is_classification and cfg.folds > smallest:
        raise fewer_folds(cfg.folds, smallest)
    return folds(groups, cfg.folds, cfg.seed)


def check_folds(k: int, rows: int) -> None:
    """Refuses more folds than rows."""
    if rows < k:
        raise UsageError(f"--folds {k}: more folds than the {rows} training rows; use fewer folds")


def fewer_folds(k: int, smallest: int, which: str = "the smallest class") -> UsageError:
    """The error for `k` folds where `which` has only `smallest` rows, each fold needing one of them to score."""
    fix = f"use --folds {smallest}" if smallest >= 2 else "a class needs two rows to be both learnt and scored"
    return UsageError(f"--folds {k}: more folds than the {smallest} row{'s' * (smallest > 1)} of {which}; {fix}")
