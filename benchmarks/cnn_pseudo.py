"""Digits CNN trained again on its training rows plus the test digits it labelled confidently (pseudo-labels).

    python benchmarks/cnn_pseudo.py [--splits 0,1] [--threshold 0.8] [--epochs 9] [--out /tmp/kc-pseudo]
        [--data ../shared/competitions]

For each 10 % split (model seed = split seed), one thread a fit, two splits side by side: kc's default CNN is fitted
on the 37,800 training rows and predicts the held-out rows and Kaggle's 28,000 unlabelled test digits; a second
default CNN is then fitted on the training rows plus every test digit whose top probability is at least
`--threshold`, labelled with that class. Both are scored on the held-out rows, which neither saw, and so is their
average. The first fit is saved in `--out` and reused. Prints one line per split.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import sys
import time
import zipfile
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import pipeline  # noqa: E402,F401  (kc's OpenMP waits, set before torch starts its runtime)

sys.path.insert(0, str(ROOT / "benchmarks"))
from cnn_speed import cpu_name, digits  # noqa: E402


def test_images(data: Path, out: Path) -> np.ndarray:
    """Kaggle's unlabelled test digits as (28,000, 28, 28) uint8, cached in `out`."""
    cache = out / "test.npy"
    if not cache.exists():
        import pandas as pd

        with zipfile.ZipFile(data / "digit-recognizer.zip") as z:
            pixels = pd.read_csv(z.open("test.csv")).to_numpy()
        np.save(cache, pixels.astype(np.uint8).reshape(-1, 28, 28))
    return np.load(cache)


def run(data: Path, out: Path, split: int, threshold: float, epochs: int) -> str:
    """Both fits on one split; a line of their held-out accuracies and CPU seconds."""
    import torch

    from pipeline.models.cnn import CNNModel
    from pipeline.training import splits

    torch.set_num_threads(1)
    X, y = digits(data / "digit-recognizer.zip")
    test = test_images(data, out)
    train, valid = splits.split(y, 0.1, split)
    first = out / f"first@{split}.npz"
    if not first.exists():
        model = CNNModel.from_params({"seed": split, "threads": 1})
        cpu0 = time.process_time()
        model.fit(X[train], y[train])
        np.savez(first, valid=model.predict_proba(X[valid]), test=model.predict_proba(test),
                 classes=np.asarray(model.classes_), cpu=time.process_time() - cpu0)
    saved = np.load(first)
    classes, sure = saved["classes"], saved["test"].max(1) >= threshold
    model = CNNModel.from_params({"seed": split, "threads": 1, "epochs": epochs})
    cpu0 = time.process_time()
    model.fit(np.concatenate([X[train], test[sure]]),
              np.concatenate([y[train], classes[saved["test"][sure].argmax(1)]]))
    second, cpu = model.predict_proba(X[valid]), time.process_time() - cpu0

    def accuracy(proba: np.ndarray) -> str:
        return f"{100 * np.mean(classes[proba.argmax(1)] == y[valid]):.2f} %"

    return (f"| {split} | {accuracy(saved['valid'])} | {accuracy(second)} | {accuracy(saved['valid'] + second)} | "
            f"{int(sure.sum()):,} | {float(saved['cpu']):.0f} + {cpu:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="0,1")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--epochs", type=int, default=9, help="of the second fit")
    parser.add_argument("--out", type=Path, default=Path("/tmp/kc-pseudo"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "competitions")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    splits = [int(s) for s in args.splits.split(",")]
    digits(args.data / "digit-recognizer.zip")  # cached once, before the workers read them
    test_images(args.data, args.out)
    print(f"CPU: {cpu_name()}; threshold {args.threshold}, second fit {args.epochs} epochs\n")
    print("| split | default | with pseudo-labels | the two averaged | test digits added | CPU s (first + second) |")
    print("|---|---|---|---|---|---|", flush=True)
    context = multiprocessing.get_context("spawn")  # a fresh torch per worker, one thread each
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        for line in pool.map(partial(run, args.data, args.out, threshold=args.threshold, epochs=args.epochs), splits):
            print(line, flush=True)


if __name__ == "__main__":
    main()
