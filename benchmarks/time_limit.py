"""How close `kc train --time-limit` comes to its limit on a real clock: a run of slow LightGBM folds per limit.

    python benchmarks/time_limit.py [--limits 5 10] [--folds 3] [--threads 1]

Trains `lgbm` on kc's bundled Titanic with a rate so low that only the clock stops it (`patience=0`, a million
rounds), and prints a Markdown table: the limit, the wall seconds the whole run took (loading, folds, pictures,
writing), the CPU seconds this process spent on it, the boosting rounds the fold models kept, and the wall time as a
share of the limit (kc aims to end within 10 % of it, never after). A busy machine makes a round slower, not the
run longer: the rounds drop. The unit test (tests/training/test_budgets.py) checks the same run on a counting clock.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import pipeline  # noqa: E402  (kc's OpenMP waits, set before torch or LightGBM starts its runtime)

SLOW = {"learning_rate": 0.0005, "patience": 0, "n_estimators": 1_000_000, "num_leaves": 63, "min_data_in_leaf": 2}


def measure(limits: list[float], folds: int, threads: int) -> list[dict[str, float]]:
    """One run per limit, in a fresh workspace holding the bundled Titanic."""
    from pipeline.core import competitions, dataset
    from pipeline.core.workspace import Workspace
    from pipeline.ingest.sources import fetch
    from pipeline.training import records, trainer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp))
        fetch("titanic", ws, Path(pipeline.__file__).parent / "data" / "titanic.zip")
        comp = competitions.get("titanic")
        data = dataset.load_dataset(comp, ws)
        trainer.train(comp, ws, records.TrainConfig(model="lgbm", params={"n_estimators": 2}), data=data)  # imports
        for limit in limits:
            cfg = records.TrainConfig(model="lgbm", params=SLOW, folds=folds, time_limit=limit, threads=threads)
            wall, cpu = time.perf_counter(), time.process_time()
            run = trainer.train(comp, ws, cfg, data=data)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            kept = sum(json.loads(p.read_text())["rounds"] for p in run.folder.glob("fold*/lgbm.json"))
            rows.append({"limit": limit, "wall": wall, "cpu": cpu, "rounds": kept})
    return rows


def main() -> None:
    """Parse the options, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", type=float, nargs="+", default=[5.0, 10.0], help="seconds, one run each")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print("| limit (s) | wall (s) | CPU (s) | rounds kept | wall / limit |")
    print("|---:|---:|---:|---:|---:|")
    for r in measure(args.limits, args.folds, args.threads):
        print(f"| {r['limit']:g} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['rounds']:,} | {r['wall'] / r['limit']:.0%} |")


if __name__ == "__main__":
    main()
