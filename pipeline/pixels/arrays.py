"""Pixel competitions: CSV rows of pixels (or image files, see `files`) -> validated, cached uint8 image arrays, PNG
folders, contact sheets."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError, UsageError
from pipeline.core.workspace import Workspace, atomic_path
from pipeline.ingest.csvfiles import (
    MAX_HEADER,
    WHOLE_NUMBER,
    decode,
    file_key,
    header_cells,
    named,
    read_header,
    shown,
    without_blank_tail,
)
from pipeline.ingest.sources import locked, require_fetched
from pipeline.pixels import images

if TYPE_CHECKING:
    from pipeline.core.dataset import Dataset

CACHE_VERSION = 3  # 3: pixels that stop short of 255 in train are stretched to 0-255


def fingerprint(*paths: Path) -> str:
    """A key that changes when any file's size or modification time changes (or the cache format)."""
    return file_key(f"v{CACHE_VERSION}", *paths)


def pixel_names(comp: Competition, header: tuple[str, ...]) -> list[str]:
    """A pixel CSV's pixel columns, in order: all but the id, the target and the train-only ones (any names)."""
    return [c for c in header if c not in {comp.id_column, comp.target_column, *comp.dropped_columns}]


def label_text(cell: object) -> str:
    """A label cell as kc's class names write it: stripped, and a whole number written as a float (1.0) as 1."""
    text = str(cell).strip()
    return str(int(text.partition(".")[0])) if "." in text and WHOLE_NUMBER.fullmatch(text) else text


def _locate_bad_cell(path: Path, columns: tuple[str, ...], label: str | None, classes: tuple[str, ...],
                     pixels: set[str]) -> str:
    """Scan the CSV slowly to name the first bad row and column (only called after the fast path fails)."""
    text = decode(path.read_bytes(), path.name)
    width = len(_names(path, columns))  # the cells a row must have: the header's, less its stray trailing ones
    try:
        return _scan_cells(path, columns, width, csv.reader(text.splitlines()), label, classes, pixels)
    except csv.Error as exc:
        return f"{path.name}: malformed CSV ({shown(str(exc))}); is a cell unreasonably long or a quote unclosed?"


def _scan_cells(path: Path, columns: tuple[str, ...], width: int, reader: Any, label: str | None,
                classes: tuple[str, ...], pixels: set[str]) -> str:
    """The first bad cell's row and column, read with the csv module; every row has `width` cells."""
    header = tuple(c.strip() for c in next(reader, ()))
    if not header:
        return f"{path.name}: the file is empty"
    for row, fields in enumerate(reader, start=1):
        if not fields:  # a blank line, which the fast parse skips too
            continue
        if len(fields) != width:
            return f"{path.name}: row {row} has {len(fields)} values, expected {width}"
        for name, value in zip(columns, fields[: len(columns)], strict=True):
            cell = value.strip()
            if cell == "":
                return f"{path.name}: row {row}, column {name}: missing value"
            if name == label:
                if label_text(cell) not in classes:
                    return f"{path.name}: row {row}, column {name}: '{shown(value)}' is not one of {', '.join(classes)}"
            elif name in pixels and (not (cell.isascii() and cell.isdigit()) or len(cell) > 3 or int(cell) > 255):
                fraction = re.fullmatch(r"[01]?\.[0-9]+(e-?[0-9]+)?|[01]\.?", cell) is not None
                return (f"{path.name}: row {row}, column {name}: '{shown(value)}' is not an integer 0-255"
                        + ("; kc reads pixels as whole numbers: for fractions of 0-1, write round(x * 255)"
                           if fraction else ""))
    return f"{path.name}: could not be parsed as integers 0-255 (row and column not found)"


def read_pixel_csv(path: Path, comp: Competition, label: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse a pixel CSV fast -> ((n, h, w) uint8 images, (n,) int64 class codes or None), naming any bad cell."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    assert comp.image_shape is not None
    columns = read_header(path)
    names = pixel_names(comp, columns)
    pixel_types = {name: pa.uint8() for name in names}  # out-of-range values fail the parse
    text_types = {c: pa.string() for c in columns if c not in pixel_types}  # the label and any id

    def bad() -> DataError:
        return DataError(_locate_bad_cell(path, columns, comp.target_column if label else None, comp.classes,
                                          set(names)))

    try:
        table = pacsv.read_csv(
            _without_blank_tail(path),  # named as read_header names them (pyarrow would name a blank cell '')
            read_options=pacsv.ReadOptions(block_size=8 << 20, skip_rows=1, column_names=_names(path, columns)),
            convert_options=pacsv.ConvertOptions(column_types=pixel_types | text_types, include_columns=list(columns),
                                                 strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, KeyError, UnicodeDecodeError) as exc:
        raise bad() from exc
    if any(col.null_count for col in table.columns):
        raise bad()
    if table.num_rows == 0:
        raise DataError(f"{path.name}: no data rows")
    codes = None
    if label:
        text = np.asarray(table.column(comp.target_column).to_pylist(), dtype=object)
        lookup = {c: i for i, c in enumerate(comp.classes)}
        codes = np.fromiter((lookup.get(label_text(v), -1) for v in text), np.int64, len(text))
        if (codes < 0).any():
            raise bad()
    pixels = table.select(names)
    # columns -> rows, one record batch at a time: a contiguous transpose is far faster than a strided stack
    out = np.empty((pixels.num_rows, pixels.num_columns), np.uint8)
    start = 0
    for batch in pixels.to_batches():
        block = np.empty((batch.num_columns, batch.num_rows), np.uint8)
        for j, column in enumerate(batch.columns):
            block[j] = column.to_numpy()
        out[start : start + batch.num_rows] = block.T
        start += batch.num_rows
    return images.to_images(np.ascontiguousarray(out), comp.image_shape), codes


def _without_blank_tail(path: Path) -> Any:
    """The file to parse: the path itself, or its bytes without the rows of commas at its end (a spreadsheet's
    leftovers, which kc's table reading drops too); only the last 64 KB are read to tell."""
    import pyarrow as pa

    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - (64 << 10)))
        tail = b"\n" + f.read()  # the chunk's first line is cut: never taken for blank
    if without_blank_tail(tail) == tail:
        return path
    return pa.BufferReader(without_blank_tail(path.read_bytes()))


def _names(path: Path, columns: tuple[str, ...]) -> list[str]:
    """Names for every cell of a row: the header's, less those of its trailing empty cells that the first row lacks
    (a header saved with stray commas at its end, over rows without them)."""
    cells = named(header_cells(path))
    if len(cells) == len(columns):
        return cells
    with open(path, "rb") as f:
        f.readline(MAX_HEADER + 1)  # header_cells above refused a longer header
        first = decode(f.readline(MAX_HEADER), path.name).splitlines()[:1]  # as header_cells reads its first row
    try:
        width = len(next(csv.reader(first), cells))
    except csv.Error:  # the parse that follows names the malformed row
        return cells
    return cells[:width] if len(columns) <= width < len(cells) else cells


@dataclass(frozen=True)
class PixelArrays:
    """Cached pixel arrays: images (n, h, w) uint8 and class codes (n,) int64 (memory-mapped)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    fingerprint: str
    from_cache: bool
    top: int = 255  # train's brightest pixel as read; below 255, every image was stretched by 255 / top
    clipped: float = 0.0  # the share of test's pixels brighter than `top`, which stretching made 255


def _cache_paths(comp: Competition, ws: Workspace) -> dict[str, Path]:
    d = ws.cache_dir(comp.slug)
    return {
        "train_images": d / "train_images.npy",
        "train_labels": d / "train_labels.npy",
        "test_images": d / "test_images.npy",
        "meta": d / "arrays.json",
    }


def _cached(comp: Competition, paths: dict[str, Path], key: str) -> PixelArrays | None:
    """The cache when its meta names this fingerprint and its arrays are what convert writes; None for any damage.

    Cheap checks only (shapes, dtypes, row counts, the label range): the images stay memory-mapped.
    """
    try:
        if paths["meta"].stat().st_size > 1 << 16:
            return None
        meta = json.loads(paths["meta"].read_text())
        if not isinstance(meta, dict) or meta.get("fingerprint") != key:
            return None
        train, labels, test = (np.load(paths[k], mmap_mode="r", allow_pickle=False)
                               for k in ("train_images", "train_labels", "test_images"))
    except (OSError, ValueError, EOFError, RecursionError):
        return None
    shape = array_shape(comp)
    if any(a.dtype != np.uint8 or a.shape[1:] != shape for a in (train, test)):
        return None
    if labels.ndim != 1 or labels.dtype != np.int64 or len(labels) != len(train) or not len(train) or not len(test):
        return None
    if (meta.get("train_rows"), meta.get("test_rows")) != (len(train), len(test)):
        return None
    if labels.min() < 0 or labels.max() >= len(comp.classes):
        return None
    top, clipped = meta.get("top", 255), meta.get("clipped", 0.0)
    if type(top) is not int or not 1 <= top <= 255 or type(clipped) not in (float, int) or not 0 <= clipped <= 1:
        return None
    return PixelArrays(train, labels, test, fingerprint=key, from_cache=True, top=top, clipped=float(clipped))


def cached(comp: Competition, ws: Workspace, key: str) -> PixelArrays | None:
    """The cached arrays when they were derived under `key` and are sound; else None."""
    return _cached(comp, _cache_paths(comp, ws), key)


def array_shape(comp: Competition) -> tuple[int, ...]:
    """Each image's array shape: (rows, columns), or (rows, columns, 3) for RGB image files."""
    return (*(comp.image_shape or ()), *((3,) if comp.image_channels == 3 else ()))


def convert(comp: Competition, ws: Workspace, force: bool = False) -> PixelArrays:
    """Parse and validate train/test CSVs into cached .npy arrays; reuse the cache when the CSVs are unchanged."""
    if comp.modality == "images":
        from pipeline.pixels import files

        return files.convert(comp, ws, force)
    folder = require_fetched(comp, ws)
    sources = [folder / comp.train_file, folder / comp.test_file]
    key = fingerprint(*sources)
    paths = _cache_paths(comp, ws)
    if not force and (cached := _cached(comp, paths, key)) is not None:
        return cached
    train_images, train_labels = read_pixel_csv(sources[0], comp, label=True)
    assert train_labels is not None  # label=True: the label column is read
    test_images, _ = read_pixel_csv(sources[1], comp, label=False)
    top, clipped = int(train_images.max()), 0.0
    if 0 < top < 255:  # e.g. scikit-learn's 8 × 8 digits run 0-16: as bytes they would look nearly blank
        clipped = float(np.count_nonzero(test_images > top) / test_images.size)
        train_images, test_images = stretch(train_images, top), stretch(test_images, top)
    return store(comp, ws, key, train_images, train_labels, test_images, top=top or 255, clipped=clipped)


def stretch(images: np.ndarray, top: int) -> np.ndarray:
    """Pixels of 0 … `top` as 0-255 (kc's convention), rounded; brighter ones (a test image's) become 255."""
    return np.clip(np.rint(images * np.float32(255 / top)), 0, 255).astype(np.uint8)


def store(comp: Competition, ws: Workspace, key: str, train_images: np.ndarray, train_labels: np.ndarray,
          test_images: np.ndarray, top: int = 255, clipped: float = 0.0) -> PixelArrays:
    """Write the arrays to the cache under `key` (the meta last: until it is rewritten, the cache counts as gone)."""
    paths = _cache_paths(comp, ws)
    with locked(ws.data_dir(comp.slug)):  # one writer of the cache at a time, so leftovers of a killed one can go
        for leftover in ws.cache_dir(comp.slug).glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        paths["meta"].unlink(missing_ok=True)  # the arrays below are only trusted once the meta is rewritten
        for name, array in (("train_images", train_images), ("train_labels", train_labels),
                            ("test_images", test_images)):
            with atomic_path(paths[name], suffix=".npy") as tmp, open(tmp, "wb") as f:
                np.save(f, array)
        meta = {"fingerprint": key, "train_rows": len(train_images), "test_rows": len(test_images), "top": top,
                "clipped": clipped}
        with atomic_path(paths["meta"]) as tmp:
            tmp.write_text(json.dumps(meta, indent=2))
    return PixelArrays(train_images, train_labels, test_images, key, from_cache=False, top=top, clipped=clipped)


def test_ids(comp: Competition, ws: Workspace, n: int) -> np.ndarray:
    """The test rows' ids: the id column when test.csv has one, else the row numbers 1..n."""
    if not comp.test_has_ids:
        return np.arange(1, n + 1, dtype=np.int64)
    from pipeline.ingest.csvfiles import read_table

    ids = read_table(require_fetched(comp, ws) / comp.test_file, strings=True)[comp.id_column].str.strip()
    bad = (ids == "").to_numpy()
    if comp.id_type == "int":
        bad = bad | ~ids.str.fullmatch(r"-?[0-9]{1,18}").to_numpy(dtype=bool)
    twice = ids.duplicated().to_numpy()
    for rows, what in ((bad, "is not a valid id" + (" (an integer)" if comp.id_type == "int" else "")),
                       (twice, "appears twice")):
        if rows.any():
            row = int(rows.argmax()) + 1
            raise DataError(f"{comp.test_file}: row {row}, column {comp.id_column}: id '{shown(ids.iloc[row - 1])}' "
                            f"{what}; every test row needs its own id")
    if len(ids) != n:
        raise DataError(f"{comp.test_file}: {len(ids)} ids for {n} test images; run `kc convert {comp.slug} --force`")
    return ids.astype(np.int64).to_numpy() if comp.id_type == "int" else ids.to_numpy(dtype=object)


def write_pngs(comp: Competition, ws: Workspace, arrays: PixelArrays, force: bool = False) -> tuple[Path, int]:
    """PNGs in the folder-per-class layout: `png/train/<label>/<row>.png` and `png/test/<row>.png`."""
    root = ws.cache_dir(comp.slug) / "png"
    paths = _cache_paths(comp, ws)
    train_names = [f"train/{comp.classes[code]}/{row}.png" for row, code in enumerate(arrays.train_labels)]
    test_names = [f"test/{i}.png" for i in range(1, len(arrays.test_images) + 1)]
    written = images.write_pngs(paths["train_images"], train_names, root, force)
    written += images.write_pngs(paths["test_images"], test_names, root, force)
    return root, written


def sheet(comp: Competition, ws: Workspace, label: str | None, n: int, seed: int, out: Path | None = None) -> Path:
    """A contact sheet of `n` random training images (optionally of one label), written as a PNG."""
    if comp.image_shape is None:
        look = f": for a first look at a table, run `kc explore {comp.slug}`" if comp.modality == "tabular" else ""
        raise UsageError(f"kc show draws pixel competitions; {comp.slug} is {comp.modality}{look}")
    if label is not None and label not in comp.classes:
        raise UsageError(f"--label {label}: expected one of {', '.join(comp.classes)}")
    if not isinstance(n, int) or not 1 <= n <= 400:
        raise UsageError(f"-n {n}: expected a number of images from 1 to 400")
    arrays = convert(comp, ws)
    code = None if label is None else comp.classes.index(label)
    rows = np.arange(len(arrays.train_labels)) if code is None else np.flatnonzero(arrays.train_labels == code)
    if not len(rows):
        raise UsageError(f"--label {label}: no training images carry it")
    chosen = np.sort(np.random.default_rng(seed).choice(rows, size=min(n, len(rows)), replace=False))
    captions = [f"{comp.classes[arrays.train_labels[r]]} (row {r})" for r in chosen]
    name = f"images-{'all' if label is None else label}-{len(chosen)}.png"
    return images.contact_sheet(arrays.train_images[chosen], captions, out or ws.cache_dir(comp.slug) / name,
                                ink=comp.modality == "pixels")


def load(comp: Competition, ws: Workspace, features: str | None = None) -> Dataset:
    """The model-ready dataset of a pixel competition (images stay uint8; models scale them)."""
    from pipeline.core.dataset import Dataset

    if features not in (None, "pixels"):
        raise UsageError(f"--features {features}: {comp.slug} is a pixel competition; its features are the pixels")
    a = convert(comp, ws)
    return Dataset.of(np.asarray(a.train_images), np.asarray(a.train_labels), np.asarray(a.test_images),
                      test_ids(comp, ws, len(a.test_images)), a.fingerprint, features={"builder": "pixels"})
