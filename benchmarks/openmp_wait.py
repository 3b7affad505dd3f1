"""How OpenMP threads wait, measured: LightGBM boosting on Otto rows, or the digits CNN, spinning or sleeping.

    python benchmarks/openmp_wait.py [--work lgbm|cnn] [--rows N] [--rounds 100] [--threads 1,2]
                                     [--waits ACTIVE,PASSIVE,PASSIVE:10000] [--busy 0,2]

A wait is OMP_WAIT_POLICY, optionally with GOMP_SPINCOUNT after a colon (libgomp's spins before a thread sleeps,
about 100,000 a millisecond; PASSIVE alone spins none). `--busy N` runs N busy-looping processes beside each fit,
the other work a shared machine has. Each case runs in a fresh process (the runtime reads its settings once, when
it starts) and prints a Markdown row of wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "competitions"


def lgbm(threads: int, rows: int, rounds: int) -> None:
    """LightGBM, `rounds` of 9-class boosting on `rows` Otto rows."""
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    with zipfile.ZipFile(SHARED / "otto-group-product-classification-challenge.zip") as z, z.open("train.csv") as f:
        train = pd.read_csv(f).sample(rows, random_state=0)
    X = train.filter(like="feat_").to_numpy(np.float32)
    y = train["target"].str[6:].astype(int).to_numpy() - 1
    timed(lambda: lgb.train({"objective": "multiclass", "num_class": 9, "num_threads": threads, "verbosity": -1,
                             "force_row_wise": True}, lgb.Dataset(X, y), rounds))


def cnn(threads: int, rows: int, rounds: int) -> None:
    """kc's digits CNN, its default recipe, `rounds` epochs on the first `rows` digits (precision: kc's choice)."""
    import numpy as np
    import pandas as pd

    from pipeline.models.cnn import CNNModel

    with zipfile.ZipFile(SHARED / "digit-recognizer.zip") as z, z.open("train.csv") as f:
        train = pd.read_csv(f, nrows=rows)
    X = train.drop(columns="label").to_numpy(np.uint8).reshape(-1, 28, 28)
    model = CNNModel(epochs=rounds, threads=threads)
    timed(lambda: model.fit(X, train["label"].to_numpy()))


def timed(work: Callable[[], object]) -> None:
    """Print 'wall cpu' seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    print(f"{time.perf_counter() - wall:.1f} {time.process_time() - cpu:.1f}")


def environment(wait: str) -> dict[str, str]:
    """This process's environment with the wait `wait` ("PASSIVE", "PASSIVE:10000") and nothing else set."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    policy, _, spins = wait.partition(":")
    env["OMP_WAIT_POLICY"] = policy
    if spins:
        env["GOMP_SPINCOUNT"] = spins
    return env


def main() -> None:
    """One row per (wait, threads, busy) case, each in a fresh process."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", choices=("lgbm", "cnn"), default="lgbm")
    parser.add_argument("--rows", type=int, default=0, help="0: 20,000 Otto rows or 6,400 digits")
    parser.add_argument("--rounds", type=int, default=0, help="0: 100 boosting rounds or 1 epoch")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--waits", default="ACTIVE,PASSIVE")
    parser.add_argument("--busy", default="0", help="busy-looping processes beside each fit, e.g. 0,2")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child: fit with this many threads
    args = parser.parse_args()
    rows = args.rows or (20_000 if args.work == "lgbm" else 6_400)
    rounds = args.rounds or (100 if args.work == "lgbm" else 1)
    if args.one:
        (lgbm if args.work == "lgbm" else cnn)(args.one, rows, rounds)
        return
    print(f"{args.work}: {rows} rows, {rounds} {'rounds' if args.work == 'lgbm' else 'epochs'}\n")
    print("| OMP_WAIT_POLICY:GOMP_SPINCOUNT | threads | busy processes beside | wall s | CPU s |")
    print("|---|---|---|---|---|")
    for busy in map(int, args.busy.split(",")):
        for wait in args.waits.split(","):
            for threads in map(int, args.threads.split(",")):
                hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
                try:
                    out = subprocess.run([sys.executable, __file__, "--work", args.work, "--one", str(threads),
                                          "--rows", str(rows), "--rounds", str(rounds)],
                                         env=environment(wait), capture_output=True, text=True, check=True)
                finally:
                    for hog in hogs:
                        hog.kill()
                wall, cpu = out.stdout.split()[-2:]
                print(f"| {wait} | {threads} | {busy} | {wall} | {cpu} |", flush=True)


if __name__ == "__main__":
    main()
