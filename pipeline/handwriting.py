"""`kc predict-image`: a photo of a handwritten digit, prepared the way MNIST digits were made, then classified."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError, UsageError
from pipeline.core.workspace import Workspace

if TYPE_CHECKING:
    from pipeline.training.records import Run

MAX_PIXELS = 50_000_000  # a 50-megapixel photo is plenty; beyond that we refuse (decompression-bomb guard)
WORK_SIDE = 800  # big photos are shrunk to this before any per-pixel work


def load_grey(path: Path) -> np.ndarray:
    """Any PNG/JPEG (colour, grey, alpha, rotated by EXIF) as a float32 grey array 0-255, at most WORK_SIDE px."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise DataError(f"{path}: image is too large ({opened.width}×{opened.height} pixels; at most "
                                f"{MAX_PIXELS // 1_000_000} megapixels)")
            im = ImageOps.exif_transpose(opened)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(paper, rgba)  # transparent = white paper
            im = im.convert("L")
            im.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.float32)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError):
        raise DataError(f"{path}: not an image kc can read (PNG or JPEG expected)") from None


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in 0-255."""
    hist, edges = np.histogram(values, bins=256, range=(0, 256))
    p = hist / max(hist.sum(), 1)
    omega, mu = np.cumsum(p), np.cumsum(p * np.arange(256))
    between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
    return float(edges[int(np.argmax(between))])


def prepare(grey: np.ndarray) -> np.ndarray:
    """A grey photo -> (28, 28) uint8 in kc's convention (0 background, 255 ink), made the way MNIST's were."""
    from scipy import ndimage

    h, w = grey.shape
    light_paper = np.median(np.r_[grey[0], grey[-1], grey[:, 0], grey[:, -1]]) > 127
    ink = 255 - grey if light_paper else grey  # ink bright, paper dark
    # paper level varies with light and shadow: estimate it locally, without the thin ink strokes
    size = max(3, min(h, w) // 8)
    paper = ndimage.uniform_filter(ndimage.grey_opening(ink, size=(size, size)), size=size)
    ink = np.clip(ink - paper, 0, None)
    if ink.max() < 40:
        raise DataError("no ink found: the image is blank")
    ink = ink * (255 / ink.max())  # stretch contrast to the full range
    mask = ink > max(_otsu(ink), 50)
    labels, n = ndimage.label(mask)
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    keep = np.isin(labels, 1 + np.flatnonzero(sizes >= 0.05 * sizes.max()))  # drop specks of paper noise
    rows, cols = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
    ink = np.where(ndimage.binary_dilation(keep, iterations=2), ink, 0)[rows[0] : rows[-1] + 1,
                                                                           cols[0] : cols[-1] + 1]
    # MNIST strokes are ~1/8 of the digit's height: thicken thin pen lines so they survive shrinking to 20 px
    area, edge = keep.sum(), (keep ^ ndimage.binary_erosion(keep)).sum()
    stroke, target = 2 * area / max(edge, 1), max(ink.shape) / 8
    if stroke < target:
        grow = round(target - stroke) | 1
        ink = ndimage.grey_dilation(ink, size=(grow, grow))
    return _centre(_fit_20(ink))


def _fit_20(ink: np.ndarray) -> np.ndarray:
    """Scale so the longer side is 20 px, keeping the aspect ratio; stretch to 0-255 again."""
    from PIL import Image

    h, w = ink.shape
    scale = 20 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(ink.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS))
    small = np.clip(small, 0, None)
    return small * (255 / max(small.max(), 1e-6))


def _centre(digit: np.ndarray) -> np.ndarray:
    """Place a ≤20×20 digit in a 28×28 field with its centre of mass at the centre, as MNIST did."""
    from scipy import ndimage

    h, w = digit.shape
    field = np.zeros((28, 28), np.float32)
    top, left = (28 - h) // 2, (28 - w) // 2
    field[top : top + h, left : left + w] = digit
    cy, cx = ndimage.center_of_mass(field)
    field = np.clip(ndimage.shift(field, (13.5 - cy, 13.5 - cx), order=1, mode="constant"), 0, None)
    field *= 255 / max(field.max(), 1e-6)  # the sub-pixel shift softens the peak: stretch again
    return np.clip(np.round(field), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Prediction:
    """One image's result: the top classes, the 28×28 input the model saw, and the nearest training digits."""

    path: Path
    digit: np.ndarray  # (28, 28) uint8
    top: list[tuple[int, float]]  # (label, probability), best first
    neighbours: list[tuple[int, int]]  # (training row, label), nearest first
    picture: Path


def nearest_rows(model: object, run: Run, X: np.ndarray, y: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """(n, 3) training-row indices of the nearest digits: the run's own kNN if it is one, else a fresh search."""
    from pipeline.models.knn import KNNModel
    from pipeline.training.records import load_train_rows

    fitted_on = load_train_rows(run, len(y)) if isinstance(model, KNNModel) else None
    if isinstance(model, KNNModel) and fitted_on is not None:  # the model's own neighbours, as rows of X
        return fitted_on[0][model.kneighbors(digits, k=3)[1]]
    return KNNModel(k=3).fit(X, y).kneighbors(digits, k=3)[1]


def _draw(original: np.ndarray, result: Prediction, X: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(13, 3.2), gridspec_kw={"width_ratios": [1.6, 1, 1, 1, 1]})
    axes[0].imshow(original, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("your image")
    axes[1].imshow(result.digit, cmap="gray_r", vmin=0, vmax=255)
    axes[1].set_title("what the model saw\n(28×28, MNIST-style)")
    for ax, (row, label) in zip(axes[2:], result.neighbours, strict=True):
        ax.imshow(X[row], cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"nearest: {label}\n(train row {row})")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    guesses = ", ".join(f"{label}: {100 * p:.1f}%" for label, p in result.top)
    fig.suptitle(f"{title}: {guesses}")
    fig.tight_layout()
    fig.savefig(result.picture, dpi=100)
    plt.close(fig)


def predict_images(comp: Competition, ws: Workspace, paths: list[Path], run_id: str | None = None,
                   out: Path | None = None) -> list[Prediction]:
    """Prepare each image, classify it with a digit run (default: the best), and draw a PNG beside it (or in out)."""
    from pipeline.core.dataset import load_dataset
    from pipeline.training.records import get_run, load_model

    if comp.image_shape != (28, 28):
        raise UsageError(f"predict-image reads 28×28 digits; {comp.slug} is not such a competition")
    prepared = []
    for path in paths:
        grey = load_grey(path)
        try:
            prepared.append((path, grey, prepare(grey)))
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
    run = get_run(comp, ws, run_id)
    model = load_model(comp, run)
    data = load_dataset(comp, ws)
    digits = np.stack([d for _, _, d in prepared])
    proba = model.predict_proba(digits)
    near = nearest_rows(model, run, data.X, data.y, digits)
    results = []
    for i, (path, grey, digit) in enumerate(prepared):
        order = np.argsort(-proba[i])[:3]
        if out is None:
            picture = path.with_name(f"{path.stem}.kc.png")
        elif len(paths) == 1 and out.suffix.lower() == ".png":
            picture = out
        else:
            out.mkdir(parents=True, exist_ok=True)
            picture = out / f"{path.stem}.kc.png"
        result = Prediction(path, digit, [(int(model.classes_[j]), float(proba[i, j])) for j in order],
                            [(int(r), int(data.y[r])) for r in near[i]], picture)
        _draw(grey, result, data.X, f"{path.name} · {run.model} run {run.run_id}")
        results.append(result)
    return results
