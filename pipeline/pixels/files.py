"""Image-file competitions: PNG/JPG files in train/ and test/ -> one shape, cached uint8 arrays (as pixel CSVs give).

Grey images become (n, rows, columns), colour ones (n, rows, columns, 3); every image is resized (squashed, not
cropped) to the description's image_shape, so a changed shape derives the arrays again.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from pipeline.core import competitions, progress
from pipeline.core.competitions import MAX_PIXELS, Competition
from pipeline.core.errors import DataError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.ingest import imagefiles
from pipeline.ingest.csvfiles import file_key, shown
from pipeline.ingest.sources import locked, require_fetched
from pipeline.pixels import arrays, images

CHUNK = 256  # images per task handed to a worker process
IN_PROCESS = 512  # fewer images than this are read without worker processes (starting them costs more)


def _read_chunk(job: tuple[list[str], list[str], tuple[int, ...]]) -> np.ndarray:
    """Worker: read, convert and resize a chunk of images -> (k, *shape) uint8."""
    from PIL import Image

    paths, names, shape = job
    out = np.empty((len(paths), *shape), np.uint8)
    mode = "RGB" if len(shape) == 3 else "L"
    size = (shape[1], shape[0])  # Pillow sizes are (width, height)
    for i, (path, name) in enumerate(zip(paths, names, strict=True)):
        with imagefiles.opened(Path(path), name) as im, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # palette transparency notes: the alpha channel is dropped anyway
            im.draft(mode, size)  # JPEG decodes straight at 1/2, 1/4 or 1/8 scale when that is still large enough
            out[i] = np.asarray(im.convert(mode).resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0))
    return out


def read_images(paths: list[Path], folder: Path, shape: tuple[int, ...], workers: int = 0) -> np.ndarray:
    """The images at `paths`, each converted and resized to `shape` ((rows, columns) or (rows, columns, 3))."""
    names = [p.relative_to(folder).as_posix() for p in paths]
    jobs = [([str(p) for p in paths[i : i + CHUNK]], names[i : i + CHUNK], shape) for i in range(0, len(paths), CHUNK)]
    out = np.empty((len(paths), *shape), np.uint8)
    workers = workers or os.cpu_count() or 1
    progress.report("images resized", 0, len(paths))

    def gather(results: object) -> np.ndarray:
        done = 0
        for block in results:  # type: ignore[attr-defined]
            out[done : done + len(block)] = block
            done += len(block)
            progress.report("images resized", done, len(paths))
        return out

    if workers == 1 or len(paths) < IN_PROCESS:
        return gather(map(_read_chunk, jobs))
    with ProcessPoolExecutor(min(workers, len(jobs)), initializer=images._die_with_parent) as pool:
        return gather(pool.map(_read_chunk, jobs))


def convert(comp: Competition, ws: Workspace, force: bool = False) -> arrays.PixelArrays:
    """Read every listed image into cached .npy arrays at the description's shape; reuse the cache while the
    files, the shape and the channels are unchanged."""
    folder = require_fetched(comp, ws)
    found = imagefiles.listing(comp, folder)
    shape = arrays.array_shape(comp)
    key = file_key(f"v{arrays.CACHE_VERSION}:images:{shape}:{comp.image_suffix}", folder / comp.train_file,
                   folder / comp.sample_file, *found.train, *found.test)
    if not force and (cached := arrays.cached(comp, ws, key)) is not None:
        return cached
    lookup = {c: i for i, c in enumerate(comp.classes)}
    codes = np.fromiter((lookup.get(v, -1) for v in found.labels), np.int64, len(found.labels))
    if (codes < 0).any():
        row = int(np.argmax(codes < 0)) + 1
        raise DataError(f"{comp.train_file}: row {row}, column {comp.target_column}: '{shown(found.labels[row - 1])}' "
                        f"is not one of {shown(', '.join(comp.classes))}")
    train = read_images(found.train, folder, shape)
    test = read_images(found.test, folder, shape)
    return arrays.store(comp, ws, key, train, codes, test)


def resized(comp: Competition, ws: Workspace, size: int) -> Competition:
    """The description with images resized to `size` × `size`, saved in competition.json (the cache then follows)."""
    if comp.modality != "images":
        raise UsageError(f"--size applies to image-file competitions; {comp.slug} is {comp.modality}")
    side = int(MAX_PIXELS**0.5)
    if not 1 <= size <= side:
        raise UsageError(f"--size {size}: expected a side from 1 to {side} pixels")
    if comp.image_shape == (size, size):
        return comp
    changed = dataclasses.replace(comp, image_shape=(size, size))
    with locked(ws.data_dir(comp.slug)):
        competitions.save(changed, ws.root)
    return changed
