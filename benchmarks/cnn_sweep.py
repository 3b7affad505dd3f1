"""Digits CNN options, one change at a time, scored on several 10 % splits: kc's default recipe against each variant.

    python benchmarks/cnn_sweep.py [--variants "default;lr=2e-3;label_smoothing=0.05,rotate=15"] [--splits 0,1,2]
        [--workers 2] [--out /tmp/kc-sweep] [--data ../shared/competitions] [--precision auto] [--pair-with default]

A variant is `default` or comma-separated `KEY=VALUE` options as `kc train -p` takes them, on top of kc's default;
`deskew=1` is this benchmark's own: it straightens every image (train and held-out) by its second moments first.
Each (variant, split) is one fit on all 37,800 training rows of that 10 % split (model seed = split seed), scored on
its 4,200 held-out rows. Fits run in `--workers` processes of one thread each, side by side (two one-thread fits
finish sooner than two two-thread fits in turn). Each fit's held-out probabilities go to `--out` as
`VARIANT@SPLIT-PRECISION.npz`, and a fit already there is not run again, so a stopped sweep resumes and later variants
line up with earlier fits. Prints a Markdown table: accuracy per split, the mean and the CPU seconds of each fit;
with `--pair-with V`, a second one: V's probabilities averaged with each other variant's, a two-model ensemble.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import pipeline  # noqa: E402,F401  (kc's OpenMP waits, set before torch starts its runtime)

sys.path.insert(0, str(ROOT / "benchmarks"))
from cnn_speed import cpu_name, digits  # noqa: E402


def options(variant: str) -> dict[str, str]:
    """`lr=2e-3,rotate=15` -> {"lr": "2e-3", "rotate": "15"}; `default` -> {}."""
    if variant == "default":
        return {}
    pairs = [pair.partition("=") for pair in variant.split(",")]
    if any(not eq or not key for key, eq, _ in pairs):
        raise SystemExit(f"variant {variant!r}: expected default or KEY=VALUE[,KEY=VALUE...]")
    return {key: value for key, _, value in pairs}


def deskewed(X: np.ndarray) -> np.ndarray:
    """Each (28, 28) digit sheared so its ink's slant is upright and moved so its centroid is central (the moment
    deskew of LeCun et al.'s MNIST tables), bilinear, as uint8."""
    from scipy.ndimage import affine_transform

    rows, cols = np.mgrid[: X.shape[1], : X.shape[2]]
    center = np.array(X.shape[1:]) / 2.0
    out = np.empty_like(X)
    for i, image in enumerate(X.astype(np.float64)):
        total = image.sum() or 1.0
        mean_r, mean_c = (rows * image).sum() / total, (cols * image).sum() / total
        var_r = ((rows - mean_r) ** 2 * image).sum() / total
        cov = ((rows - mean_r) * (cols - mean_c) * image).sum() / total
        shear = np.array([[1.0, 0.0], [cov / var_r if var_r else 0.0, 1.0]])
        offset = np.array([mean_r, mean_c]) - shear @ center
        out[i] = np.clip(np.rint(affine_transform(image, shear, offset=offset, order=1)), 0, 255)
    return out


def saved_as(out: Path, variant: str, split: int, precision: str) -> Path:
    """Where one fit's held-out probabilities are kept: a bf16 fit is never taken for an fp32 one."""
    return out / f"{variant}@{split}-{precision}.npz"


def fit(data: Path, variant: str, split: int, precision: str, out: Path) -> tuple[float, float]:
    """Train one variant on one split, one thread; save its held-out probabilities; (accuracy, CPU s)."""
    import torch

    from pipeline.models.cnn import CNNModel
    from pipeline.training import splits

    torch.set_num_threads(1)
    X, y = digits(data / "digit-recognizer.zip")
    train, valid = splits.split(y, 0.1, split)
    params = options(variant)
    if params.pop("deskew", "0") not in ("0", "false"):
        X = deskewed(X)
    model = CNNModel.from_params({"seed": split, "threads": 1, "precision": precision, **params})
    cpu0 = time.process_time()
    model.fit(X[train], y[train], X[valid], y[valid])
    proba = model.predict_proba(X[valid])
    cpu_s, classes = time.process_time() - cpu0, np.asarray(model.classes_)
    path = saved_as(out, variant, split, precision)
    with open(path.with_suffix(".tmp"), "wb") as f:  # whole or not at all: a sweep stopped mid-write resumes
        np.savez(f, proba=proba, classes=classes, rows=valid, cpu_s=cpu_s)
    os.replace(path.with_suffix(".tmp"), path)
    return averaged(out, [variant], split, precision, y), cpu_s


def score(out: Path, variant: str, split: int, precision: str, y: np.ndarray) -> tuple[float, float] | None:
    """(accuracy, CPU s) of a saved fit, None when it has not run."""
    path = saved_as(out, variant, split, precision)
    if not path.exists():
        return None
    return averaged(out, [variant], split, precision, y), float(np.load(path)["cpu_s"])


def averaged(out: Path, variants: list[str], split: int, precision: str, y: np.ndarray) -> float:
    """Accuracy of the saved fits of `variants` on one split, their probabilities averaged (two: an ensemble)."""
    saved = [np.load(saved_as(out, variant, split, precision)) for variant in variants]
    proba = np.mean([s["proba"] for s in saved], axis=0)
    return float(np.mean(saved[0]["classes"][proba.argmax(1)] == y[saved[0]["rows"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="default", help="variants separated by ';'")
    parser.add_argument("--splits", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/kc-sweep"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "competitions")
    parser.add_argument("--precision", default="auto", help="auto (bf16 where the CPU has it), bf16 or fp32")
    parser.add_argument("--pair-with", default="", help="a variant: also score it averaged with each other one")
    args = parser.parse_args()
    variants, splits = args.variants.split(";"), [int(s) for s in args.splits.split(",")]
    from pipeline.core.errors import UsageError
    from pipeline.models.cnn import CNNModel

    for variant in variants:  # refuse a malformed variant or an unknown option before an hour of fits
        try:
            own = {key: value for key, value in options(variant).items() if key != "deskew"}
            CNNModel.from_params({"precision": args.precision, **own})
        except UsageError as exc:
            raise SystemExit(f"variant {variant!r}: {exc}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    _, y = digits(args.data / "digit-recognizer.zip")
    jobs = [(v, s) for v in variants for s in splits if score(args.out, v, s, args.precision, y) is None]
    print(f"CPU: {cpu_name()}; {len(jobs)} fits to run in {args.workers} one-thread workers, precision "
          f"{args.precision}; fits saved in {args.out}", flush=True)
    context = multiprocessing.get_context("spawn")  # a fresh torch per worker, one thread each
    with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        running = {pool.submit(fit, args.data, v, s, args.precision, args.out): (v, s) for v, s in jobs}
        failed = []
        for done in concurrent.futures.as_completed(running):
            (variant, split), error = running[done], done.exception()
            if error is not None:  # the other fits go on; the tables need them all
                failed.append(f"{variant} on split {split}")
                print(f"  {variant} on split {split} failed: {error!r}", flush=True)
                continue
            acc, cpu_s = done.result()
            print(f"  {variant} on split {split}: {100 * acc:.2f}% ({cpu_s:.0f} CPU s)", flush=True)
    if failed:
        raise SystemExit(f"{len(failed)} fit(s) failed ({', '.join(failed)}); run again to retry them")
    print("\n| variant | " + " | ".join(f"split {s}" for s in splits) + " | mean | CPU s per fit |")
    print("|---|" + "---|" * (len(splits) + 2))
    for variant in variants:
        scored = [result for s in splits if (result := score(args.out, variant, s, args.precision, y))]  # all ran
        accs = [100 * acc for acc, _ in scored]
        print(f"| {variant} | " + " | ".join(f"{a:.2f} %" for a in accs) + f" | {np.mean(accs):.2f} % | "
              f"{np.mean([cpu for _, cpu in scored]):.0f} |")
    if args.pair_with:
        others = [v for v in variants if v != args.pair_with]
        missing = [s for s in splits if score(args.out, args.pair_with, s, args.precision, y) is None]
        if missing:
            raise SystemExit(f"--pair-with {args.pair_with}: not fitted on split(s) {missing}; add it to --variants")
        print(f"\n| {args.pair_with} averaged with | " + " | ".join(f"split {s}" for s in splits) + " | mean |")
        print("|---|" + "---|" * (len(splits) + 1))
        for variant in others:
            accs = [100 * averaged(args.out, [args.pair_with, variant], s, args.precision, y) for s in splits]
            print(f"| {variant} | " + " | ".join(f"{a:.2f} %" for a in accs) + f" | {np.mean(accs):.2f} % |")


if __name__ == "__main__":
    main()
