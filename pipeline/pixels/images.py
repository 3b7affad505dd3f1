"""The one pixel convention, PNG files and contact sheets (handwriting preprocessing is in pipeline/handwriting.py).

Convention everywhere in kc: images are `(n, rows, columns)` uint8, 0 is background, 255 is ink
(digits: `(n, 28, 28)`).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import progress

SIDE = 28
# MNIST's pixel statistics on the 0-1 scale, for normalising float input
MEAN, STD = 0.1307, 0.3081


def to_images(flat: np.ndarray, shape: tuple[int, int] = (SIDE, SIDE)) -> np.ndarray:
    """(n, rows * columns) uint8 pixel rows -> (n, rows, columns) uint8 images (a view, no copy)."""
    if flat.ndim != 2 or flat.shape[1] != shape[0] * shape[1] or flat.dtype != np.uint8:
        raise ValueError(f"expected (n, {shape[0] * shape[1]}) uint8 pixel rows, got {flat.shape} {flat.dtype}")
    return flat.reshape(-1, *shape)


def to_float(images: np.ndarray, normalise: bool = True) -> np.ndarray:
    """(n, h, w) or RGB (n, h, w, 3) uint8 -> (n, channels, h, w) float32, scaled to 0-1 then (optionally)
    MNIST-normalised."""
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"expected (n, rows, columns) uint8 images, got {images.shape} {images.dtype}")
    x = (images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)).astype(np.float32) / 255.0
    return (x - MEAN) / STD if normalise else x


def flat_inputs(X: np.ndarray) -> np.ndarray:
    """Model input as (n, features) float32: uint8 images go through `to_float`, tables pass as they are."""
    if X.dtype == np.uint8:
        X = to_float(np.asarray(X))
    return np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), -1)


def _write_chunk(args: tuple[str, list[tuple[int, str]]]) -> int:
    """Worker: write the PNGs for a chunk of (row, path) pairs from a memory-mapped array."""
    from PIL import Image

    array_path, jobs = args
    images = np.load(array_path, mmap_mode="r")
    for row, path in jobs:
        tmp = f"{path}.{os.getpid()}.tmp"  # written whole, then renamed: a kill never leaves a truncated PNG
        Image.fromarray(np.asarray(images[row])).save(tmp, format="PNG", optimize=False, compress_level=1)
        os.replace(tmp, path)
    return len(jobs)


def _die_with_parent() -> None:
    """Worker start-up: on Linux, ask the kernel to end this worker when kc itself dies (even by kill -9)."""
    import contextlib
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


PNG_END = b"IEND\xaeB`\x82"  # the last 8 bytes of every complete PNG


def _usable(path: Path) -> bool:
    """An existing PNG worth keeping: complete to its end chunk (kc before atomic writes could leave cut files)."""
    try:
        with open(path, "rb") as f:
            f.seek(-len(PNG_END), os.SEEK_END)
            return f.read() == PNG_END
    except OSError:
        return False


def write_pngs(array_path: Path, names: list[str], folder: Path, force: bool = False, workers: int = 0) -> int:
    """Write image `i` of the .npy at `array_path` to `folder/names[i]`, in parallel; return how many written."""
    jobs = []
    for row, name in enumerate(names):
        path = folder / name
        if force or not _usable(path):
            jobs.append((row, str(path)))
    for parent in {os.path.dirname(p) for _, p in jobs}:
        os.makedirs(parent, exist_ok=True)
    for tmp in folder.glob("**/*.png.*.tmp"):  # left by a killed run
        tmp.unlink(missing_ok=True)
    if not jobs:
        return 0
    workers = workers or os.cpu_count() or 1
    size = max(1, min(2000, len(jobs) // (workers * 4) + 1))
    chunks = [(str(array_path), jobs[i : i + size]) for i in range(0, len(jobs), size)]

    def write_all(mapper: Any) -> int:
        done = 0
        for written in mapper(_write_chunk, chunks):  # in order, as chunks finish
            done += written
            progress.report("png", done, len(jobs))
        return done

    progress.report("png", 0, len(jobs))
    if workers == 1 or len(chunks) == 1:
        return write_all(map)
    with ProcessPoolExecutor(workers, initializer=_die_with_parent) as pool:
        return write_all(pool.map)


def read_png(path: Path) -> np.ndarray:
    """A 28×28 grey PNG back as a (28, 28) uint8 array."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


CAPTION_WIDTH = 12  # characters that fit over one thumbnail at 9 points; longer captions wrap at 7 points


def caption_lines(caption: str) -> str:
    """A caption that fits over its thumbnail: one line, or two of at most 16 characters, cut with … after that."""
    import textwrap

    if len(caption) <= CAPTION_WIDTH:
        return caption
    lines = textwrap.wrap(caption, 16, break_long_words=True, break_on_hyphens=False)
    return "\n".join(lines) if len(lines) <= 2 else f"{lines[0]}\n{lines[1][:15]}…"


def contact_sheet(images: np.ndarray, captions: list[str], path: Path, cols: int = 8, ink: bool = True) -> Path:
    """Draw images in a grid with a caption over each; write the PNG to `path` (`ink`: 255 is ink, drawn dark)."""
    from pipeline.core.figures import pyplot

    fig = sheet_figure(images, captions, cols, ink)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def sheet_figure(images: np.ndarray, captions: list[str], cols: int = 8, ink: bool = True) -> Any:
    """The contact sheet's matplotlib figure: images in a grid, each caption wrapped to fit over its image."""
    from pipeline.core.figures import pyplot

    plt = pyplot()
    n = len(images)
    cols = min(cols, n)
    rows = -(-n // cols)
    shown = [caption_lines(c) for c in captions]
    extra = max((c.count("\n") for c in shown), default=0)  # a second caption line needs room above each image
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * (1.25 + 0.2 * extra)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, shown, strict=False):
        ax.imshow(image, cmap="gray_r" if ink else "gray", vmin=0, vmax=255)
        ax.set_title(caption, fontsize=9 if len(caption) <= CAPTION_WIDTH else 7)
    fig.tight_layout()
    return fig
