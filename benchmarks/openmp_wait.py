"""How OpenMP threads wait, measured: LightGBM boosting on Otto rows with 1 and 2 threads, spinning or sleeping.

    python benchmarks/openmp_wait.py [--rows 20000] [--rounds 100]

Each case runs in a fresh process (OMP_WAIT_POLICY is read once, when the OpenMP runtime starts) and prints a
Markdown table of wall and CPU seconds. Run it with some other work on the cores: spinning costs most there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

OTTO = Path(__file__).resolve().parents[2] / "shared" / "competitions" / \
    "otto-group-product-classification-challenge.zip"


def one(threads: int, rows: int, rounds: int) -> str:
    """Fit once in this process; return 'wall cpu'."""
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    with zipfile.ZipFile(OTTO) as z, z.open("train.csv") as f:
        train = pd.read_csv(f).sample(rows, random_state=0)
    X = train.filter(like="feat_").to_numpy(np.float32)
    y = train["target"].str[6:].astype(int).to_numpy() - 1
    wall, cpu = time.perf_counter(), time.process_time()
    lgb.train({"objective": "multiclass", "num_class": 9, "num_threads": threads, "verbosity": -1,
               "force_row_wise": True}, lgb.Dataset(X, y), rounds)
    return f"{time.perf_counter() - wall:.1f} {time.process_time() - cpu:.1f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child: fit with this many threads
    args = parser.parse_args()
    if args.one:
        print(one(args.one, args.rows, args.rounds))
        sys.exit()
    print("| OMP_WAIT_POLICY | threads | wall s | CPU s |\n|---|---|---|---|")
    for policy in ("ACTIVE", "PASSIVE"):
        for threads in (1, 2):
            env = {**os.environ, "OMP_WAIT_POLICY": policy}
            out = subprocess.run([sys.executable, __file__, "--one", str(threads), "--rows", str(args.rows),
                                  "--rounds", str(args.rounds)], env=env, capture_output=True, text=True, check=True)
            wall, cpu = out.stdout.split()
            print(f"| {policy} | {threads} | {wall} | {cpu} |", flush=True)
