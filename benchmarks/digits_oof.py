"""Digits, 5-fold out-of-fold on all 42,000 training rows: kc's linear and kNN beside scikit-learn peers.

    python benchmarks/digits_oof.py [--data ../shared/competitions] [--folds 5] [--peers logistic,gbm]

Every model sees the same folds (kc's stratified folds, seed 0). kc models run through `kc.train(..., folds=5)`;
the peers are scikit-learn's LogisticRegression and HistGradientBoostingClassifier on pixels scaled to 0-1.
Prints a Markdown table: OOF accuracy, per-fold spread, and fit + predict seconds (wall) for all folds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import pipeline  # noqa: E402,F401  (kc's OpenMP waits, set before torch or LightGBM starts its runtime)


def peer(name: str, X: np.ndarray, y: np.ndarray, parts: list[np.ndarray]) -> tuple[float, float, float]:
    """(OOF accuracy, fold spread, seconds) of a scikit-learn model on the same folds."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    pred = np.zeros(len(y), np.int64)
    scores = []
    t0 = time.perf_counter()
    for part in parts:
        rest = np.setdiff1d(np.arange(len(y)), part)
        model = (LogisticRegression(max_iter=200) if name == "logistic"
                 else HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0))
        model.fit(X[rest], y[rest])
        pred[part] = model.predict(X[part])
        scores.append(float(np.mean(pred[part] == y[part])))
    return float(np.mean(pred == y)), float(np.std(scores)), time.perf_counter() - t0


def main() -> None:
    import pipeline as kc
    from pipeline.core import competitions, dataset
    from pipeline.core.workspace import Workspace
    from pipeline.training import splits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "competitions")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--peers", default="logistic,gbm")
    args = parser.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="kc-bench-oof-"))
    kc.fetch("digit-recognizer", args.data / "digit-recognizer.zip", workspace=ws)
    comp = competitions.get("digit-recognizer")
    data = dataset.load_dataset(comp, Workspace(ws))
    rows = []
    for model in ("knn", "linear"):
        run = kc.train(comp.slug, model, folds=args.folds, workspace=ws)
        seconds = run.metrics.fit_seconds + run.metrics.predict_seconds  # as the peers: fit + predict, all folds
        rows.append((f"kc `{model}`", run.score, run.metrics.fold_std, seconds))
        print(rows[-1], flush=True)
    parts = splits.folds(splits.strata(comp, data.y), args.folds, 0)
    X = data.X.reshape(len(data.X), -1).astype(np.float32) / 255
    for name in filter(None, args.peers.split(",")):
        acc, spread, seconds = peer(name, X, data.y, parts)
        label = "LogisticRegression(max_iter=200)" if name == "logistic" else "HistGradientBoosting(max_iter=100)"
        rows.append((f"scikit-learn {label}", acc, spread, seconds))
        print(rows[-1], flush=True)
    print(f"\n| model | {args.folds}-fold OOF accuracy (42,000 rows) | fold spread | time, all folds |")
    print("|---|---|---|---|")
    for name, acc, spread, seconds in rows:
        print(f"| {name} | {100 * acc:.2f}% | ± {100 * spread:.2f} | {seconds:.0f} s |")


if __name__ == "__main__":
    main()
