"""The dataset every model reads, built by the competition's modality (pixels or tables)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.workspace import Workspace

# modality -> the module that reads it; each has `load(comp, ws, features) -> Dataset` and `convert(comp, ws, force)`
READERS = {"pixels": "pipeline.pixels.arrays", "images": "pipeline.pixels.arrays", "tabular": "pipeline.tables.frames"}


Matrix = np.ndarray | Callable[[], np.ndarray]  # an array, or how to build it when first asked for


def rows_except(n: int, rows: np.ndarray) -> np.ndarray:
    """The row indices 0..n-1 not in `rows`, in order (a mask: np.setdiff1d sorts, 0.9 s on a million rows)."""
    keep = np.ones(n, dtype=bool)
    keep[rows] = False
    return np.flatnonzero(keep)


def take_rows(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """X[rows], rows in increasing order. A matrix mapped whole from a file (kc's table cache) is read from the file a
    stretch at a time instead, so its pages do not become this process's memory beside the copy (57 MB of a
    million-row table, for as long as the mapping lives). The file holds what the mapping shows: kc's trainer takes
    a fold's rows before any model is handed the matrix itself, and a cache is replaced only by one of the same key."""
    if not (isinstance(X, np.memmap) and _mapped_whole(X)) or np.any(rows[1:] < rows[:-1]):
        return X[rows]
    try:
        return _read_rows(X, rows)
    except (OSError, ValueError):  # the file is gone or not what was mapped (a newer cache): the mapping is what counts
        return X[rows]


def _read_rows(X: np.memmap, rows: np.ndarray) -> np.ndarray:
    """X[rows] read from X's file, a stretch of rows at a time; ValueError when the file ends early."""
    out = np.empty((len(rows), *X.shape[1:]), X.dtype)
    row_bytes, done = X.strides[0], 0
    span = max(1, _STRETCH_BYTES // row_bytes)  # rows read at a time
    with open(str(X.filename), "rb") as f:
        if os.fstat(f.fileno()).st_size != X.offset + X.nbytes:
            raise ValueError("another file")
        while done < len(rows):
            first = int(rows[done])
            end = done + int(np.searchsorted(rows[done:], first + span))  # the rows within one stretch
            stretch = np.empty((int(rows[end - 1]) - first + 1, *X.shape[1:]), X.dtype)
            f.seek(X.offset + first * row_bytes)
            if f.readinto(stretch.data.cast("B")) != stretch.nbytes:
                raise ValueError("the file ends early")
            np.take(stretch, rows[done:end] - first, axis=0, out=out[done:end])
            done = end
    return out


_STRETCH_BYTES = 4 << 20  # read at a time: 69,905 rows of a 15-feature float32 table, 1,048 of 1,000 features


def _mapped_whole(X: np.memmap) -> bool:
    """Whether X is a C-ordered matrix mapped whole from a file (np.load's mmap_mode), not a view into one."""
    import mmap

    return isinstance(X.base, mmap.mmap) and X.flags.c_contiguous and bool(X.filename)


@dataclass(frozen=True)
class Dataset:
    """What every model eats: training inputs and targets, test inputs and the ids a submission needs.

    The input matrices (`X`, `X_test`, and for tables `X_raw`, `X_test_raw`) are built when first used: a tree
    model's training never encodes the scaled variant or the test rows.
    """

    y: np.ndarray  # (n,) int64 class codes (indices into comp.classes), or float64 values for regression;
    # (n, targets) for several targets
    test_ids: np.ndarray  # (m,) int64 or str ids, one per test row
    fingerprint: str
    feature_names: tuple[str, ...] = ()
    features: dict[str, Any] = field(default_factory=dict)  # the feature builder's record, saved with each run
    # columns computed from labels (Titanic's group features) are X's last g columns, valued as for a fit on all
    # train rows; fit_columns(rows) -> (n, g) recomputes them for a model fitted on `rows`, from those labels only
    fit_columns: Callable[[np.ndarray], np.ndarray] | None = None
    matrices: dict[str, Matrix | None] = field(default_factory=dict, repr=False)  # X, X_test, X_raw, X_test_raw
    from_cache: bool = False  # the matrices are mapped from a cache `kc convert` had written before this load

    @classmethod
    def of(cls, X: Matrix, y: np.ndarray, X_test: Matrix, test_ids: np.ndarray, fingerprint: str,
           feature_names: tuple[str, ...] = (), X_raw: Matrix | None = None, X_test_raw: Matrix | None = None,
           features: dict[str, Any] | None = None,
           fit_columns: Callable[[np.ndarray], np.ndarray] | None = None, from_cache: bool = False) -> Dataset:
        """A dataset from its matrices (arrays, or functions building them) and the rest."""
        matrices = {"X": X, "X_test": X_test, "X_raw": X_raw, "X_test_raw": X_test_raw}
        return cls(y, test_ids, fingerprint, feature_names, features or {}, fit_columns, matrices, from_cache)

    def _matrix(self, name: str) -> np.ndarray | None:
        value = self.matrices.get(name)
        if callable(value):
            value = self.matrices[name] = value()
        return value

    @property
    def X(self) -> np.ndarray:
        """Train inputs. Pixels: (n, h, w) uint8; tables: (n, features) float32, scaled for linear models and kNN."""
        X = self._matrix("X")
        assert X is not None
        return X

    @property
    def X_test(self) -> np.ndarray:
        """Test inputs, as `X`."""
        X = self._matrix("X_test")
        assert X is not None
        return X

    @property
    def X_raw(self) -> np.ndarray | None:
        """Tables: unscaled train features for tree models (None: same as X)."""
        return self._matrix("X_raw")

    @property
    def X_test_raw(self) -> np.ndarray | None:
        """Tables: unscaled test features (None: same as X_test)."""
        return self._matrix("X_test_raw")

    def train_inputs(self, scaled: bool) -> np.ndarray:
        """Train inputs in the form a model wants, scaled for linear/kNN, raw for trees (test rows are not built)."""
        raw = None if scaled or self.matrices.get("X_raw") is None else self.X_raw
        return self.X if raw is None else raw

    def test_inputs(self, scaled: bool) -> np.ndarray:
        """Test inputs in the form a model wants (train rows are not built)."""
        raw = None if scaled or self.matrices.get("X_test_raw") is None else self.X_test_raw
        return self.X_test if raw is None else raw

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
    return reader(comp).load(comp, ws, features)


def load_test(comp: Competition, ws: Workspace, features: str | None, record: dict[str, Any]) -> Dataset:
    """What a run's submission needs: the test rows through the run's saved feature state when its reader can
    rebuild them from that alone (no train rows read, nothing refitted), else the whole dataset as `load_dataset`."""
    module = reader(comp)
    data = module.load_test(comp, ws, record) if hasattr(module, "load_test") else None
    return data if data is not None else load_dataset(comp, ws, features)


def convert(comp: Competition, ws: Workspace, force: bool = False) -> Any:
    """Validate the fetched CSVs and write the derived data for whichever modality this is."""
    return reader(comp).convert(comp, ws, force)
