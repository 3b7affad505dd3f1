"""Digits CNNs on the full data: `--full` (refit on all rows) and an ensemble of CNNs that differ, with CPU time.

    python benchmarks/digits_cnn.py [--data ../shared/competitions] [--epochs 12] [--workspace DIR --runs ID,ID]

Every run uses the same 90/10 split (seed 0 for the split), so the members' validation rows are shared and
`kc ensemble` can weigh them. Prints a Markdown table: validation accuracy on the 4,200 held-out rows, wall and
CPU seconds (all threads), and what each run submits with.
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

# members that differ in width and augmentation (five seeds of one recipe made the same mistakes)
MEMBERS = (
    ("A: width 32 + 28×28 block (the old default), --full", {"width": 32, "full_res": True}, True),
    ("B: width 48, light augmentation", {"width": 48, "rotate": 5.0, "zoom": 0.05, "shift": 1.0}, False),
    ("C: width 24, strong augmentation", {"width": 24, "rotate": 15.0, "zoom": 0.15, "shift": 3.0}, False),
)


def main() -> None:
    import pipeline as kc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "competitions")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--workspace", type=Path, default=None, help="reuse a workspace (default: a fresh one)")
    parser.add_argument("--runs", default="", help="blend these finished runs of --workspace instead of training")
    args = parser.parse_args()
    ws = args.workspace or Path(tempfile.mkdtemp(prefix="kc-bench-cnn-"))
    rows, runs = [], [kc.run("digit-recognizer", r, workspace=ws) for r in filter(None, args.runs.split(","))]
    for run in runs:  # reused: their fit wall time as recorded (CPU time is measured only when trained here)
        rows.append((f"{run.run_id} ({run.config.params.get('width')} wide)", f"{100 * run.score:.2f}%",
                     f"{run.metrics.fit_seconds:.0f}", "-", run.metrics.submits_with))
    if not runs:
        kc.fetch("digit-recognizer", args.data / "digit-recognizer.zip", workspace=ws)
        kc.convert("digit-recognizer", workspace=ws)
    for name, params, full in () if runs else MEMBERS:
        wall, cpu = time.perf_counter(), time.process_time()
        run = kc.train("digit-recognizer", "cnn", epochs=args.epochs, full=full, params=params, workspace=ws)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        runs.append(run)
        what = f"refit on all 42,000 rows for {run.metrics.full_epochs} epochs" if full else "the 37,800-row model"
        rows.append((name, f"{100 * run.score:.2f}%", f"{wall:.0f}", f"{cpu:.0f}", what))
        print(f"{name}: {100 * run.score:.2f}% in {wall:.0f}s wall, {cpu:.0f}s CPU ({run.run_id})", flush=True)
    wrong = []
    for run in runs:
        saved = np.load(run.folder / "valid.npz")
        wrong.append(set(saved["index"][np.argmax(saved["outputs"], 1) != _labels(kc, ws)[saved["index"]]]))
    for method in ("weighted", "mean", "vote"):
        t0 = time.perf_counter()
        blended = kc.ensemble("digit-recognizer", runs, method, workspace=ws)
        e = blended.ensemble
        weights = ", ".join(f"{w:.2f}" for w in e.weights.values())
        rows.append((f"ensemble of {len(runs)}, {method}" + (f" (weights {weights})" if method == "weighted" else ""),
                     f"{100 * e.score:.2f}%", f"{time.perf_counter() - t0:.0f}", "-", "the members' submit models"))
    print()
    print("| run | validation accuracy (4,200 rows) | wall s | CPU s | submits with |")
    print("|---|---|---|---|---|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    union, common = set.union(*wrong), set.intersection(*wrong)
    print(f"\nwrong in any member: {len(union)}; in all of them: {len(common)}; "
          f"in at least two: {sum(sum(i in w for w in wrong) >= 2 for i in union)}")
    print(f"workspace: {ws}")


def _labels(kc: object, ws: Path) -> np.ndarray:
    from pipeline.core import competitions, dataset
    from pipeline.core.workspace import Workspace

    return dataset.load_dataset(competitions.get("digit-recognizer"), Workspace(ws)).y


if __name__ == "__main__":
    main()
