"""kc on big tables: train + submit on Titanic grown to N rows, against plain LightGBM reading, fitting and predicting.

    OMP_NUM_THREADS=1 python benchmarks/scale.py --rows 100000 1000000 [--threads 1] [--rounds 200]

The table is Titanic's train rows copied until it holds N rows (numbers jittered by up to 5 %, new ids), with a test
table a quarter its size; kc describes it as any inferred table. Each step runs in its own process under
`/usr/bin/time -v`: wall and CPU seconds, and peak RSS (children included). kc trains `lgbm` on one split with
`n_estimators` and `patience=0`, so both sides grow the same number of rounds; with `--rounds 0`, kc trains its default
for the table (lgbm with early stopping on an inner split and a refit) and plain LightGBM grows the rounds kc kept.
With `--convert`, `kc convert` runs first (timed apart): train and submit then map its cached matrices.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TITANIC = ROOT.parent / "shared" / "competitions" / "titanic.zip"
SLUG = "titanic-grown"


def grow(rows: int, folder: Path, seed: int = 0) -> Path:
    """Write train.csv (rows), test.csv and sample_submission.csv (rows // 4) grown from Titanic's train rows."""
    import numpy as np
    import pandas as pd

    with zipfile.ZipFile(TITANIC) as z, z.open("train.csv") as f:
        base = pd.read_csv(f)
    rng = np.random.default_rng(seed)

    def copies(n: int, first_id: int) -> pd.DataFrame:
        out = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
        for column in ("Age", "Fare"):
            out[column] = (out[column] * rng.uniform(0.95, 1.05, n)).round(2)
        out["PassengerId"] = np.arange(first_id, first_id + n)
        return out

    folder.mkdir(parents=True, exist_ok=True)
    train, test = copies(rows, 1), copies(rows // 4, rows + 1).drop(columns=["Survived"])
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    test[["PassengerId"]].assign(Survived=0).to_csv(folder / "sample_submission.csv", index=False)
    return folder


def timed(cmd: list[str], cwd: Path | None = None) -> dict:
    """Run a command under /usr/bin/time -v: wall and CPU seconds, peak RSS in MB."""
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    field = lambda name: re.search(rf"{name}: ([\d.:]+)", done.stderr).group(1)  # noqa: E731
    wall = sum(float(p) * 60 ** i for i, p in enumerate(reversed(field(r"Elapsed \(wall clock\) time .*?").split(":"))))
    cpu = float(field("User time \\(seconds\\)")) + float(field("System time \\(seconds\\)"))
    peak = int(field(r"Maximum resident set size \(kbytes\)")) // 1024
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_mb": peak, "stdout": done.stdout}


PLAIN = """
import sys, pandas as pd, lightgbm as lgb
folder, rounds, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
train, test = pd.read_csv(f"{folder}/train.csv"), pd.read_csv(f"{folder}/test.csv")
y = train.pop("Survived")
for frame in (train, test):
    for c in frame.select_dtypes(exclude="number").columns:
        frame[c] = frame[c].astype("category")
train, test = train.drop(columns=["PassengerId"]), test.drop(columns=["PassengerId"])
test = test.astype({c: pd.CategoricalDtype(train[c].cat.categories) for c in train.columns[train.dtypes == "category"]})
params = dict(objective="binary", learning_rate=0.05, num_leaves=31, num_threads=threads, verbosity=-1)
booster = lgb.train(params, lgb.Dataset(train, y), num_boost_round=rounds)
pd.DataFrame({"PassengerId": range(len(test)), "Survived": (booster.predict(test) > 0.5).astype(int)}).to_csv(
    f"{folder}/plain.csv", index=False)
"""


def measure(rows: int, rounds: int, threads: int, convert: bool = False) -> dict:
    """kc fetch (untimed), [kc convert,] kc train, kc submit; and plain LightGBM read + fit + predict, on one table."""
    work = Path(tempfile.mkdtemp(prefix="kc-scale-"))
    data = grow(rows, work / "data")
    kc = [sys.executable, "-m", "pipeline", "--workspace", str(work / "ws")]
    subprocess.run([*kc, "fetch", SLUG, "--from", str(data)], check=True, capture_output=True, cwd=ROOT)
    converted = timed([*kc, "convert", SLUG], cwd=ROOT) if convert else None
    if rounds:
        train = timed([*kc, "train", SLUG, "--model", "lgbm", "-p", f"n_estimators={rounds}", "-p", "patience=0",
                       "--threads", str(threads)], cwd=ROOT)
    else:  # kc's default, then plain LightGBM with the rounds of the model kc submits with
        train = timed([*kc, "train", SLUG, "--threads", str(threads)], cwd=ROOT)
        state = json.loads(next((work / "ws" / "competitions" / SLUG / "runs").rglob("lgbm.json")).read_text())
        rounds = train["rounds"] = state["rounds"]
    submit = timed([*kc, "submit", SLUG], cwd=ROOT)
    plain = timed([sys.executable, "-c", PLAIN, str(data), str(rounds), str(threads)])
    return {"rows": rows, "kc_convert": converted, "kc_train": train, "kc_submit": submit, "plain_lightgbm": plain}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument("--rounds", type=int, default=200, help="0: kc's default model, plain with its rounds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--convert", action="store_true", help="kc convert first; train and submit map its cache")
    args = parser.parse_args()
    for n in args.rows:
        print(measure(n, args.rounds, args.threads, args.convert), flush=True)
