"""The dataset every model reads, built by the competition's modality (pixels or tables)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.workspace import Workspace

# modality -> the module that reads it; each has `load(comp, ws, features) -> Dataset` and `convert(comp, ws, force)`
READERS = {"pixels": "pipeline.pixels.arrays", "images": "pipeline.pixels.arrays", "tabular": "pipeline.tables.frames"}


@dataclass(frozen=True)
class Dataset:
    """What every model eats: training inputs and targets, test inputs and the ids a submission needs."""

    X: np.ndarray  # pixels: (n, h, w) uint8; tables: (n, features) float32, scaled for linear models and kNN
    y: np.ndarray  # (n,) int64 class codes (indices into comp.classes), or float64 values for regression;
    # (n, targets) for several targets
    X_test: np.ndarray
    test_ids: np.ndarray  # (m,) int64 or str ids, one per test row
    fingerprint: str
    feature_names: tuple[str, ...] = ()
    X_raw: np.ndarray | None = None  # tables: unscaled features for tree models (None: same as X)
    X_test_raw: np.ndarray | None = None
    features: dict[str, Any] = field(default_factory=dict)  # the feature builder's record, saved with each run
    # columns computed from labels (Titanic's group features) are X's last g columns, valued as for a fit on all
    # train rows; fit_columns(rows) -> (n, g) recomputes them for a model fitted on `rows`, from those labels only
    fit_columns: Callable[[np.ndarray], np.ndarray] | None = None

    def inputs(self, scaled: bool) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) inputs in the form a model wants: scaled for linear/kNN, raw for trees."""
        if scaled or self.X_raw is None or self.X_test_raw is None:
            return self.X, self.X_test
        return self.X_raw, self.X_test_raw

    def for_fit(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Train inputs X (scaled or raw) for a model fitted on `rows`: its label columns from those rows' labels."""
        if self.fit_columns is None:
            return X
        block = self.fit_columns(rows)  # (n, g)
        out = X.copy()
        out[:, X.shape[1] - block.shape[1]:] = block
        return out


def reader(comp: Competition) -> Any:
    """The module that reads this competition's modality."""
    return importlib.import_module(READERS[comp.modality])


def load_dataset(comp: Competition, ws: Workspace, features: str | None = None) -> Dataset:
    """Convert (or reuse the cache) and return the model-ready dataset; `features` overrides the builder."""
    data = reader(comp).load(comp, ws, features)
    _check_finite(comp, data)
    return data


def _check_finite(comp: Competition, data: Dataset) -> None:
    """Refuse table features that became inf or NaN (values beyond float32, about ±3.4e38), naming the column."""
    for name, X in ((comp.train_file, data.X_raw), (comp.train_file, data.X), (comp.test_file, data.X_test_raw),
                    (comp.test_file, data.X_test)):
        if X is None or X.dtype.kind != "f" or X.ndim != 2:
            continue
        with np.errstate(all="ignore"):
            bad = ~np.isfinite(X)
        if bad.any():
            row, col = (int(v) for v in np.argwhere(bad)[0])
            what = data.feature_names[col] if col < len(data.feature_names) else f"number {col + 1}"
            from pipeline.core.errors import DataError

            raise DataError(f"{name}: feature {what} (row {row + 1}) is beyond what 32-bit features hold (about "
                            "±3.4e38), or its column's spread is: scale that column down or drop it")


def load_test(comp: Competition, ws: Workspace, features: str | None, record: dict[str, Any]) -> Dataset:
    """What a run's submission needs: the test rows through the run's saved feature state when its reader can
    rebuild them from that alone (no train rows read, nothing refitted), else the whole dataset as `load_dataset`."""
    module = reader(comp)
    data = module.load_test(comp, ws, record) if hasattr(module, "load_test") else None
    return data if data is not None else load_dataset(comp, ws, features)


def convert(comp: Competition, ws: Workspace, force: bool = False) -> Any:
    """Validate the fetched CSVs and write the derived data for whichever modality this is."""
    return reader(comp).convert(comp, ws, force)
