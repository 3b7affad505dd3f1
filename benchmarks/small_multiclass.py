"""Small multiclass tables: kc's default (lgbm) against blend and sk-logistic, out-of-fold on the same folds.

    python benchmarks/small_multiclass.py [--models lgbm,blend,sk-logistic] [--seeds 0,1,2] [--tables wine,...]

Tables, all shipped offline: scikit-learn's wine (178 rows, 3 classes), iris (150, 3) and digits as a table of 64
pixel counts (1,797, 10); the penguins fixture (tests/fixtures/layouts, 240 rows, 3 species); 5,000 rows drawn
from Otto's train.csv (seed 0, 9 classes; ../shared/competitions). Each is written as Kaggle lays a competition out,
fetched, and trained with 5 folds and one thread per seed; the table prints mean out-of-fold accuracy over the seeds
(the metric kc defaults to for one label per row) and the CPU seconds of the fits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pipeline import api  # noqa: E402

SHARED = ROOT.parent / "shared" / "competitions"


def tables() -> dict[str, tuple[pd.DataFrame, str]]:
    """name -> (features with the target column, the target's name)."""
    from sklearn import datasets

    found = {}
    for name, load in (("wine", datasets.load_wine), ("iris", datasets.load_iris), ("digits", datasets.load_digits)):
        bunch = load(as_frame=True)
        frame = bunch.frame.rename(columns={"target": "kind"})
        frame["kind"] = [f"class_{int(v)}" for v in frame["kind"]]
        found[name] = (frame, "kind")
    penguins = pd.read_csv(ROOT / "tests/fixtures/layouts/penguins/train.csv")
    found["penguins"] = (penguins.drop(columns="id"), "Species")
    otto = SHARED / "otto-group-product-classification-challenge.zip"
    if otto.exists():
        with zipfile.ZipFile(otto) as z:
            frame = pd.read_csv(z.open("train.csv")).sample(5_000, random_state=0).drop(columns="id")
        found["otto-5000"] = (frame, "target")
    return found


def layout(frame: pd.DataFrame, target: str, folder: Path) -> Path:
    """train.csv, a test.csv of 20 unlabelled rows and a sample submission, as Kaggle ships them."""
    folder.mkdir(parents=True)
    frame = frame.reset_index(drop=True)
    frame.insert(0, "row_id", np.arange(1, len(frame) + 1))
    frame.to_csv(folder / "train.csv", index=False)
    test = frame.drop(columns=target).head(20).assign(row_id=lambda t: t["row_id"] + 1_000_000)
    test.to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"row_id": test["row_id"], target: frame[target].iloc[0]}).to_csv(
        folder / "sample_submission.csv", index=False)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lgbm,blend,sk-logistic")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tables", default="")
    args = parser.parse_args()
    models, seeds = args.models.split(","), [int(s) for s in args.seeds.split(",")]
    chosen = tables()
    if args.tables:
        chosen = {k: v for k, v in chosen.items() if k in args.tables.split(",")}
    print(f"| table | rows | classes | {' | '.join(models)} |")
    print("|---|---|---|" + "---|" * len(models))
    with tempfile.TemporaryDirectory() as tmp:
        for name, (frame, target) in chosen.items():
            api.fetch(name, layout(frame, target, Path(tmp) / "src" / name), workspace=tmp)
            cells = []
            for model in models:
                scores, cpu = [], 0.0
                for seed in seeds:
                    t0 = time.process_time()
                    run = api.train(name, model, folds=5, seed=seed, threads=1, workspace=tmp, progress=False)
                    cpu += time.process_time() - t0
                    scores.append(run.score)
                cells.append(f"{100 * np.mean(scores):.2f} % ({cpu / len(seeds):.0f} CPU s)")
                print(f"  {name} {model}: {[round(100 * s, 2) for s in scores]}", file=sys.stderr)
            print(f"| {name} | {len(frame):,} | {frame[target].nunique()} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
