"""The derived-table cache: `kc convert` saves a table's encoded matrices as .npy; train and submit map them.

One folder per builder and key, `derived/tables/<builder>-<key>/`, written whole and renamed into place, so a reader
sees one conversion or none. The key covers the data files (size, modification and change times, inode), the
competition's description, the code that reads and encodes and the pandas it runs on; any change, or any damage a
cheap check finds, and kc reads the CSVs again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError
from pipeline.core.workspace import Workspace
from pipeline.ingest.csvfiles import file_key
from pipeline.ingest.sources import locked

if TYPE_CHECKING:
    from pipeline.core.dataset import Dataset

VERSION = 2
CACHED = ("generic", "houses")  # builders whose features the cache holds (Titanic's refit group features per fit)
MATRICES = ("X", "X_raw", "X_test", "X_test_raw")  # (rows, features) float32 each: scaled and raw, train and test
STAGING = ".kc-staging-"  # a conversion being written (or left by a killed one); nothing else here is removed
_KEPT = re.compile(r"[a-z-]+-[0-9a-f]{16}")  # a finished conversion's folder name: <builder>-<key>


def key(comp: Competition, ws: Workspace, fingerprint: str) -> str:
    """The cache key: the data's fingerprint, the files' change times and inodes (a same-size edit with its old
    modification time restored still counts), the whole description (targets, classes, ids) and the code."""
    from pipeline.core import dates
    from pipeline.ingest import csvfiles
    from pipeline.tables import frames

    files = [ws.data_dir(comp.slug) / name for name in (comp.train_file, comp.test_file)]
    changed = ";".join(f"{st.st_ino}:{st.st_ctime_ns}" for st in map(os.stat, files))
    described = json.dumps(comp.to_json(), sort_keys=True, default=str)
    salt = f"v{VERSION}|{fingerprint}|{changed}|{described}|pandas {metadata.version('pandas')}"
    return file_key(salt, *(Path(str(m.__file__)) for m in (frames, csvfiles, dates)), Path(__file__))


def folder(comp: Competition, ws: Workspace, builder: str, fingerprint: str) -> Path:
    """Where the matrices of this builder and fingerprint live."""
    return ws.cache_dir(comp.slug) / "tables" / f"{builder}-{key(comp, ws, fingerprint)}"


def read(comp: Competition, ws: Workspace, builder: str, fingerprint: str) -> Dataset | None:
    """The cached dataset, its matrices memory-mapped (copy-on-write: a model may write, the file never changes);
    None when there is none for this key or a check fails."""
    from pipeline.core.dataset import Dataset

    try:
        where = folder(comp, ws, builder, fingerprint)
        meta = json.loads((where / "meta.json").read_text())
        arrays = {name: np.load(where / f"{name}.npy", mmap_mode="c", allow_pickle=False) for name in MATRICES}
        y = np.load(where / "y.npy", allow_pickle=False)
        test_ids = _read_ids(where / "test_ids.parquet")
    except (OSError, ValueError, EOFError, RecursionError, TypeError):
        return None
    if not _sound(comp, builder, meta, arrays, y, test_ids):
        return None
    return Dataset.of(arrays["X"], y, arrays["X_test"], test_ids, fingerprint, tuple(meta["names"]), arrays["X_raw"],
                      arrays["X_test_raw"], meta["record"], from_cache=True)


def _read_ids(path: Path) -> np.ndarray:
    """(m,) int64 or str (object) ids from the one-column parquet `store` wrote; ValueError for anything else."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        column = pq.read_table(path).column(0)
    except pa.ArrowException as exc:
        raise ValueError(str(exc)) from None
    if column.type == pa.int64():
        return column.to_numpy()
    if column.type in (pa.string(), pa.large_string()) and column.null_count == 0:
        return column.to_numpy(zero_copy_only=False).astype(object)
    raise ValueError(f"ids of type {column.type}")


def _sound(comp: Competition, builder: str, meta: Any, arrays: dict[str, np.ndarray], y: np.ndarray,
           test_ids: np.ndarray) -> bool:
    """The shapes, types and targets `store` writes (cheap checks: the matrices stay on disk)."""
    if not isinstance(meta, dict) or not isinstance(meta.get("record"), dict) or \
            not isinstance(meta.get("names"), list) or meta["record"].get("builder") != builder:
        return False
    rows, test_rows = meta.get("train_rows"), meta.get("test_rows")
    if any(a.dtype != np.float32 or a.ndim != 2 for a in arrays.values()):
        return False
    if arrays["X"].shape != (rows, len(meta["names"])) or arrays["X_raw"].shape[0] != rows:
        return False
    if arrays["X_test"].shape != (test_rows, arrays["X"].shape[1]) or arrays["X_test_raw"].shape != \
            (test_rows, arrays["X_raw"].shape[1]):
        return False
    if y.shape != ((rows, len(comp.targets)) if comp.targets else (rows,)) or len(test_ids) != test_rows:
        return False
    if not len(y):
        return False
    if y.dtype == np.int64:  # class codes (a column per target when there are several)
        return bool(y.min() >= 0 and (comp.targets or (comp.is_classification and y.max() < len(comp.classes))))
    return y.dtype == np.float64 and bool(np.isfinite(y).all())


def kept(comp: Competition, ws: Workspace, data: Dataset) -> Dataset:
    """The dataset mapped from the cache, stored there first unless it came from it; as it is when the cache cannot
    be written (a read-only or full disk) or the builder is not cached (Titanic's).

    Processes that map the same files share their pages: `kc tune --workers 2` holds the rows once, encoded once.
    """
    if data.from_cache or data.features.get("builder") not in CACHED:
        return data
    try:
        return store(comp, ws, data)
    except (DataError, OSError):  # OSError: the lock or the data files themselves could not be reached
        return data


def store(comp: Competition, ws: Workspace, data: Dataset) -> Dataset:
    """Build each matrix in turn, save it and let it go; then rename the folder into place and return it mapped."""
    builder = data.features["builder"]
    final = folder(comp, ws, builder, data.fingerprint)
    root = final.parent
    with locked(ws.data_dir(comp.slug)):  # one writer at a time, so leftovers of a killed one can go
        try:
            _write(root, final, builder, data)
        except (OSError, ValueError) as exc:  # numpy says "N requested and M written" when the disk is full
            if isinstance(exc, ValueError) and "requested and" not in str(exc):
                raise
            reason = "no space left on the device" if isinstance(exc, ValueError) else \
                exc.strerror or " ".join(str(exc).split())
            raise DataError(f"{root}: cannot write kc's feature cache ({reason}); free some space or make it "
                            "writable (kc train and submit read the CSVs without it)") from None
    found = read(comp, ws, builder, data.fingerprint)
    if found is None:
        raise DataError(f"the feature cache just written to {final} does not read back; kc train and submit read "
                        "the CSVs without it")
    return found


def _write(root: Path, final: Path, builder: str, data: Dataset) -> None:
    """Stage the conversion in a hidden folder beside `final`, then put it in place of this builder's older ones."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob(f"{STAGING}*"):  # killed writers' (the lock is held): real folders only
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
    staged = Path(tempfile.mkdtemp(prefix=f"{STAGING}{builder}-", dir=root))
    try:
        for name in MATRICES:
            matrix = data.matrices[name]
            array = matrix() if callable(matrix) else matrix  # built here, held by no one once saved
            assert array is not None, f"a table dataset without {name}"
            np.save(staged / f"{name}.npy", array)
            del array
        np.save(staged / "y.npy", data.y)
        ids = data.test_ids
        pq.write_table(pa.table({"id": ids.tolist() if ids.dtype == object else ids}), staged / "test_ids.parquet")
        meta = {"train_rows": len(data.y), "test_rows": len(ids), "names": list(data.feature_names),
                "record": data.features}
        (staged / "meta.json").write_text(json.dumps(meta, indent=1))
        if final.is_symlink():
            final.unlink()
        elif final.exists():  # --force over the same key: set aside, so a failed rename leaves it in place
            final.rename(staged.with_name(f"{STAGING}{builder}-replaced"))
        staged.rename(final)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    for old in [*root.glob(f"{builder}-*"), *root.glob(f"{STAGING}{builder}-replaced")]:
        if old == final:  # this builder's conversions of other data or code go, and nothing else
            continue
        if old.is_symlink():
            old.unlink()
        elif old.is_dir() and (_KEPT.fullmatch(old.name) or old.name.startswith(STAGING)):
            shutil.rmtree(old, ignore_errors=True)
