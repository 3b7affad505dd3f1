"""`kc convert`: validated, cached arrays from the fetched CSVs."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline import images
from pipeline.competitions import Competition, DataFile
from pipeline.errors import DataError, UsageError
from pipeline.fetch import require_fetched
from pipeline.workspace import Workspace, atomic_path

if TYPE_CHECKING:
    import pandas as pd

CACHE_VERSION = 1


def fingerprint(*paths: Path) -> str:
    """A key that changes when any file's size or modification time changes."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _locate_bad_cell(path: Path, spec: DataFile, label_column: str | None) -> str:
    """Scan the CSV slowly to name the first bad row and column (only called after the fast path fails)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return f"{path.name}: the file is empty"
        if tuple(header) != spec.columns:
            return f"{path.name}: the header does not match {spec.name}'s ({len(header)} columns)"
        for row, fields in enumerate(reader, start=1):
            if len(fields) != len(spec.columns):
                return f"{path.name}: row {row} has {len(fields)} values, expected {len(spec.columns)}"
            for name, value in zip(spec.columns, fields, strict=True):
                top = 9 if name == label_column else 255
                if value.strip() == "":
                    return f"{path.name}: row {row}, column {name}: missing value"
                if not value.strip().isdigit() or int(value) > top:
                    return f"{path.name}: row {row}, column {name}: '{value}' is not an integer 0-{top}"
    return f"{path.name}: could not be parsed as integers"


def read_pixel_csv(path: Path, spec: DataFile, label_column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse a digit CSV fast -> ((n, 28, 28) uint8 images, (n,) int64 labels or None); fail naming row and column."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {name: pa.uint8() for name in spec.columns}  # out-of-range or non-integer values fail the parse
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=8 << 20),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=list(spec.columns)),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, KeyError) as exc:
        raise DataError(_locate_bad_cell(path, spec, label_column)) from exc
    if table.column_names != list(spec.columns):
        raise DataError(_locate_bad_cell(path, spec, label_column))
    if any(col.null_count for col in table.columns):
        raise DataError(_locate_bad_cell(path, spec, label_column))
    if table.num_rows == 0:
        raise DataError(f"{path.name}: no data rows")
    # columns -> rows, one record batch at a time: a contiguous transpose is far faster than a strided stack
    out = np.empty((table.num_rows, table.num_columns), np.uint8)
    start = 0
    for batch in table.to_batches():
        block = np.empty((batch.num_columns, batch.num_rows), np.uint8)
        for j, column in enumerate(batch.columns):
            block[j] = column.to_numpy()
        out[start : start + batch.num_rows] = block.T
        start += batch.num_rows
    labels = None
    if label_column is not None:
        labels = out[:, 0].astype(np.int64)
        if labels.max() > 9:
            row = int(np.argmax(labels > 9)) + 1
            raise DataError(f"{path.name}: row {row}, column {label_column}: '{labels[row - 1]}' is not an integer 0-9")
        out = out[:, 1:]
    return images.to_images(np.ascontiguousarray(out)), labels


@dataclass(frozen=True)
class DigitArrays:
    """Cached digit arrays: images (n, 28, 28) uint8 and labels (n,) int64 (memory-mapped)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    fingerprint: str
    from_cache: bool


def _cache_paths(comp: Competition, ws: Workspace) -> dict[str, Path]:
    d = ws.cache_dir(comp.slug)
    return {
        "train_images": d / "train_images.npy",
        "train_labels": d / "train_labels.npy",
        "test_images": d / "test_images.npy",
        "meta": d / "arrays.json",
    }


def convert_digits(comp: Competition, ws: Workspace, force: bool = False) -> DigitArrays:
    """Parse and validate train/test CSVs into cached .npy arrays; reuse the cache when the CSVs are unchanged."""
    folder = require_fetched(comp, ws)
    sources = [folder / comp.train.name, folder / comp.test.name]
    key = fingerprint(*sources)
    paths = _cache_paths(comp, ws)
    if not force:
        try:
            if json.loads(paths["meta"].read_text()).get("fingerprint") == key:
                return DigitArrays(
                    *(np.load(paths[k], mmap_mode="r") for k in ("train_images", "train_labels", "test_images")),
                    fingerprint=key,
                    from_cache=True,
                )
        except (OSError, ValueError):
            pass  # no cache or a damaged one: rebuild
    train_images, train_labels = read_pixel_csv(sources[0], comp.train, comp.target_column)
    test_images, _ = read_pixel_csv(sources[1], comp.test, None)
    paths["meta"].unlink(missing_ok=True)  # the arrays below are only trusted once the meta is rewritten
    for name, array in (("train_images", train_images), ("train_labels", train_labels), ("test_images", test_images)):
        with atomic_path(paths[name], suffix=".npy") as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    meta = {"fingerprint": key, "train_rows": len(train_images), "test_rows": len(test_images)}
    with atomic_path(paths["meta"]) as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    return DigitArrays(train_images, train_labels, test_images, key, from_cache=False)


def write_digit_pngs(comp: Competition, ws: Workspace, arrays: DigitArrays, force: bool = False) -> tuple[Path, int]:
    """PNGs in the folder-per-class layout: `png/train/<label>/<row>.png` and `png/test/<ImageId>.png`."""
    root = ws.cache_dir(comp.slug) / "png"
    paths = _cache_paths(comp, ws)
    train_names = [f"train/{label}/{row}.png" for row, label in enumerate(arrays.train_labels)]
    test_names = [f"test/{i}.png" for i in range(1, len(arrays.test_images) + 1)]
    written = images.write_pngs(paths["train_images"], train_names, root, force)
    written += images.write_pngs(paths["test_images"], test_names, root, force)
    return root, written


@dataclass(frozen=True)
class TitanicTables:
    """Cached Titanic feature tables (float columns) with labels and test ids."""

    train: pd.DataFrame
    test: pd.DataFrame
    labels: np.ndarray
    test_ids: np.ndarray
    fingerprint: str
    from_cache: bool


def convert_titanic(comp: Competition, ws: Workspace, force: bool = False) -> TitanicTables:
    """Validate the Titanic CSVs and cache their feature tables as parquet."""
    import pandas as pd

    from pipeline import features

    folder = require_fetched(comp, ws)
    key = fingerprint(folder / comp.train.name, folder / comp.test.name, Path(features.__file__))
    d = ws.cache_dir(comp.slug)
    train_path, test_path, meta_path = d / "features_train.parquet", d / "features_test.parquet", d / "features.json"
    if not force:
        try:
            if json.loads(meta_path.read_text()).get("fingerprint") == key:
                train, test = pd.read_parquet(train_path), pd.read_parquet(test_path)
                labels, ids = train.pop(comp.target_column).to_numpy(), test.pop(comp.id_column).to_numpy()
                return TitanicTables(train, test, labels.astype(np.int64), ids.astype(np.int64), key, True)
        except (OSError, ValueError, KeyError):
            pass
    raw_train, raw_test = features.load_titanic(comp, folder)
    train, test = features.build_features(raw_train, raw_test)
    labels = raw_train[comp.target_column].to_numpy().astype(np.int64)
    ids = raw_test[comp.id_column].to_numpy().astype(np.int64)
    meta_path.unlink(missing_ok=True)
    for path, table, column, values in ((train_path, train, comp.target_column, labels),
                                        (test_path, test, comp.id_column, ids)):
        with atomic_path(path, suffix=".parquet") as tmp:
            table.assign(**{column: values}).to_parquet(tmp, index=False)
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps({"fingerprint": key, "columns": list(train.columns)}, indent=2))
    return TitanicTables(train, test, labels, ids, key, False)


@dataclass(frozen=True)
class Dataset:
    """What every model eats: training inputs and labels, test inputs and the ids a submission needs."""

    X: np.ndarray  # digits: (n, 28, 28) uint8; tabular: (n, features) float32
    y: np.ndarray  # (n,) int64
    X_test: np.ndarray
    test_ids: np.ndarray  # (m,) int64, in the sample submission's order
    fingerprint: str
    feature_names: tuple[str, ...] = ()


def load_dataset(comp: Competition, ws: Workspace) -> Dataset:
    """Convert (or reuse the cache) and return the model-ready dataset."""
    if comp.task == "image":
        a = convert_digits(comp, ws)
        ids = np.arange(1, len(a.test_images) + 1, dtype=np.int64)
        return Dataset(np.asarray(a.train_images), np.asarray(a.train_labels), np.asarray(a.test_images), ids,
                       a.fingerprint)
    t = convert_titanic(comp, ws)
    return Dataset(t.train.to_numpy(np.float32), t.labels, t.test.to_numpy(np.float32), t.test_ids, t.fingerprint,
                   tuple(t.train.columns))


def convert(comp: Competition, ws: Workspace, force: bool = False) -> DigitArrays | TitanicTables:
    """Convert whichever kind of competition this is."""
    if comp.task == "image":
        return convert_digits(comp, ws, force)
    return convert_titanic(comp, ws, force)


def digit_sheet(comp: Competition, ws: Workspace, label: int | None, n: int, seed: int,
                out: Path | None = None) -> Path:
    """A contact sheet of `n` random training digits (optionally of one label), written as a PNG."""
    if comp.task != "image":
        raise UsageError(f"kc show draws image competitions; {comp.slug} is tabular")
    if label is not None and label not in comp.classes:
        raise UsageError(f"--label {label}: expected one of {', '.join(map(str, comp.classes))}")
    arrays = convert_digits(comp, ws)
    rows = np.arange(len(arrays.train_labels)) if label is None else np.flatnonzero(arrays.train_labels == label)
    chosen = np.sort(np.random.default_rng(seed).choice(rows, size=min(n, len(rows)), replace=False))
    captions = [f"{arrays.train_labels[r]} (row {r})" for r in chosen]
    name = f"digits-{'all' if label is None else label}-{len(chosen)}.png"
    return images.contact_sheet(arrays.train_images[chosen], captions, out or ws.cache_dir(comp.slug) / name)
