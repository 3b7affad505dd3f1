"""The derived-table cache: `kc convert` saves a table's encoded matrices as .npy; train and submit map them.

One folder per builder and key, `derived/tables/<builder>-<key>/`, written whole and renamed into place, so a reader
sees one conversion or none. The key covers the data files, the competition's description and the code that encodes;
any change, or any damage a cheap check finds, and kc reads the CSVs again.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.workspace import Workspace
from pipeline.ingest.csvfiles import file_key
from pipeline.ingest.sources import locked

if TYPE_CHECKING:
    from pipeline.core.dataset import Dataset

VERSION = 1
CACHED = ("generic", "houses")  # builders whose features the cache holds (Titanic's refit group features per fit)
MATRICES = ("X", "X_raw", "X_test", "X_test_raw")  # (rows, features) float32 each: scaled and raw, train and test


def key(comp: Competition, fingerprint: str) -> str:
    """The cache key: the data's fingerprint, the whole description (targets, classes, ids) and this code."""
    from pipeline.tables import frames

    described = json.dumps(comp.to_json(), sort_keys=True, default=str)
    return file_key(f"v{VERSION}|{fingerprint}|{described}", Path(frames.__file__), Path(__file__))


def folder(comp: Competition, ws: Workspace, builder: str, fingerprint: str) -> Path:
    """Where the matrices of this builder and fingerprint live."""
    return ws.cache_dir(comp.slug) / "tables" / f"{builder}-{key(comp, fingerprint)}"


def read(comp: Competition, ws: Workspace, builder: str, fingerprint: str) -> Dataset | None:
    """The cached dataset, its matrices memory-mapped (copy-on-write: a model may write, the file never changes);
    None when there is none for this key or a check fails."""
    from pipeline.core.dataset import Dataset

    where = folder(comp, ws, builder, fingerprint)
    try:
        if (where / "meta.json").stat().st_size > 1 << 24:
            return None
        meta = json.loads((where / "meta.json").read_text())
        arrays = {name: np.load(where / f"{name}.npy", mmap_mode="c", allow_pickle=False) for name in MATRICES}
        y = np.load(where / "y.npy", allow_pickle=False)
        test_ids = np.load(where / "test_ids.npy", allow_pickle=False)
    except (OSError, ValueError, EOFError, RecursionError):
        return None
    if not _sound(comp, meta, arrays, y, test_ids):
        return None
    ids = test_ids.astype(object) if test_ids.dtype.kind == "U" else test_ids
    return Dataset.of(arrays["X"], y, arrays["X_test"], ids, fingerprint, tuple(meta["names"]), arrays["X_raw"],
                      arrays["X_test_raw"], meta["record"], from_cache=True)


def _sound(comp: Competition, meta: Any, arrays: dict[str, np.ndarray], y: np.ndarray, test_ids: np.ndarray) -> bool:
    """The shapes, types and target codes `store` writes (cheap checks: the matrices stay on disk)."""
    if not isinstance(meta, dict) or not isinstance(meta.get("record"), dict) or \
            not isinstance(meta.get("names"), list):
        return False
    rows, test_rows = meta.get("train_rows"), meta.get("test_rows")
    if any(a.dtype != np.float32 or a.ndim != 2 for a in arrays.values()):
        return False
    if arrays["X"].shape != (rows, len(meta["names"])) or arrays["X_raw"].shape[0] != rows:
        return False
    if arrays["X_test"].shape != (test_rows, arrays["X"].shape[1]) or arrays["X_test_raw"].shape != \
            (test_rows, arrays["X_raw"].shape[1]):
        return False
    if len(y) != rows or len(test_ids) != test_rows or test_ids.dtype.kind not in "iU":
        return False
    if y.dtype == np.int64:  # class codes (a column per target when there are several)
        return bool(y.min() >= 0 and (comp.targets or (comp.is_classification and y.max() < len(comp.classes))))
    return y.dtype == np.float64


def kept(comp: Competition, ws: Workspace, data: Dataset) -> Dataset:
    """The dataset mapped from the cache, stored there first unless it came from it (Titanic's builder: as it is).

    Processes that map the same files share their pages: `kc tune --workers 2` holds the rows once, encoded once.
    """
    if data.from_cache or data.features.get("builder") not in CACHED:
        return data
    return store(comp, ws, data)


def store(comp: Competition, ws: Workspace, data: Dataset) -> Dataset:
    """Build each matrix in turn, save it and let it go; then rename the folder into place and return it mapped."""
    builder = data.features["builder"]
    final = folder(comp, ws, builder, data.fingerprint)
    root = final.parent
    with locked(ws.data_dir(comp.slug)):  # one writer at a time, so leftovers of a killed one can go
        root.mkdir(parents=True, exist_ok=True)
        for leftover in root.glob(".*"):
            shutil.rmtree(leftover, ignore_errors=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{builder}-", dir=root))
        try:
            for name in MATRICES:
                matrix = data.matrices[name]
                array = matrix() if callable(matrix) else matrix  # built here, held by no one once saved
                assert array is not None, f"a table dataset without {name}"
                np.save(staged / f"{name}.npy", array)
                del array
            np.save(staged / "y.npy", data.y)
            ids = data.test_ids
            np.save(staged / "test_ids.npy", ids.astype(str) if ids.dtype == object else ids)
            meta = {"train_rows": len(data.y), "test_rows": len(ids), "names": list(data.feature_names),
                    "record": data.features}
            (staged / "meta.json").write_text(json.dumps(meta, indent=1))
            for old in root.glob(f"{builder}-*"):  # this builder's conversions of other data or code
                shutil.rmtree(old)
            staged.rename(final)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    found = read(comp, ws, builder, data.fingerprint)
    assert found is not None, f"the cache just written to {final} does not read back"
    return found
