"""Scores that mean something on small data: out-of-fold by default on small tables, a warning on few rows."""

from __future__ import annotations

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.training.records import RunMetrics

SMALL_TABLE_ROWS = 5_000  # below this a table is scored out-of-fold unless --folds says otherwise
SMALL_IMAGE_ROWS = 2_000  # images: below this a 10% split holds under FEW_ROWS, so they are scored out-of-fold too
AUTO_FOLDS = 5
FEW_ROWS = 200  # a score on fewer rows than this moves by several points with the split


def auto_folds(comp: Competition, y: np.ndarray) -> int:
    """The folds `--folds` means when not given: 5 for a table under 5,000 rows or images under 2,000 (a 10% split
    of either is too few rows to judge by), fewer when the smallest class has fewer rows, else 0 (one split)."""
    if len(y) >= (SMALL_TABLE_ROWS if comp.modality == "tabular" else SMALL_IMAGE_ROWS):
        return 0
    return most_folds(comp, y)


def most_folds(comp: Competition, y: np.ndarray) -> int:
    """The most folds up to 5 that `--folds` can take on these targets: no more than the rows of the smallest class
    (of any of several 0/1 targets, and on a small table only as many as kc finds folds for that each hold both
    classes of every target), nor than the rows; 0 when not even two work."""
    if not comp.is_classification:
        return min(AUTO_FOLDS, len(y)) if len(y) >= 2 else 0  # never more folds than rows
    if not comp.targets:
        smallest = int(np.unique(y, return_counts=True)[1].min())
        return min(AUTO_FOLDS, smallest) if smallest >= 2 else 0
    from pipeline.training.targets import dealt_folds, rarer_counts

    most = min(AUTO_FOLDS, int(rarer_counts(y).min()))
    if len(y) >= SMALL_TABLE_ROWS:  # dealing takes seconds there: the check is left to the fit
        return most if most >= 2 else 0
    return next((k for k in range(most, 1, -1) if dealt_folds(y, k, 0)[0] is not None), 0)


def few_rows_note(metrics: RunMetrics) -> str | None:
    """A warning with the fix when the score rests on fewer than ~200 rows, else None."""
    n = metrics.valid_rows
    if n >= FEW_ROWS:
        return None
    if metrics.scored_on == "oof":
        return (f"scored on only {n} rows in all: any score on so few rows is rough, and runs whose scores lie "
                "close may differ by chance alone")
    rough = f"scored on only {n} held-out row{'s' * (n != 1)}: another split could move it by several points; "
    if metrics.most_folds == 0 and metrics.target_scores:  # several 0/1 targets: their 1s may share rows
        return rough + ("kc finds no two folds that each hold both classes of every target, so no row is scored "
                        "out-of-fold")
    if metrics.most_folds == 0:  # a class of one row: it is never both learnt and scored
        return rough + "a class with a single row keeps every row from being scored out-of-fold; more rows are the fix"
    folds = metrics.most_folds or AUTO_FOLDS  # None: a run saved before kc recorded it
    return rough + f"score every row out-of-fold with --folds {folds}"


def forecast_note(comp: Competition) -> str | None:
    """The warning for scores on random folds when test's dates all come after train's, else None."""
    if not comp.forecast_columns:
        return None
    return (f"test's {', '.join(comp.forecast_columns)} values all come after train's, and kc's folds are random: they "
            "mix past and future rows, so this score may flatter a model that must forecast (kc explore shows the "
            "dates)")
