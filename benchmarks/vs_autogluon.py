"""kc's default against AutoGluon on the same folds: metric, fit and predict seconds, peak RSS.

    python benchmarks/vs_autogluon.py --tables titanic,houses,affairs,otto [--ag-python /work/agvenv/bin/python]
        [--presets medium_quality:60,best_quality:120] [--workspace DIR] [--report]

AutoGluon is a benchmark peer, never a kc dependency: it lives in its own venv (`python -m venv agvenv &&
agvenv/bin/pip install autogluon.tabular statsmodels`), and this script runs its side there (`--side ag`).
For each table the driver (kc's venv) fetches the zip into a workspace, writes kc's own folds (`splits.folds` on
`splits.strata`, seed 0; Otto: kc's 10 % split, seed 0) to folds.npy, then times each step as its own process under
`/usr/bin/time -v`, on one core: `kc train` (default model; again with `--time-limit` equal to AutoGluon's
best_quality fit seconds), `kc submit`, and AutoGluon fitting one predictor per fold with the preset's per-fold
time limit, scoring the held-out rows and predicting test.csv with every fold's predictor. Scores are out-of-fold
on the training rows only (test labels are not ours). Each result is appended to results.jsonl in the workspace;
`--report` prints them as a Markdown table.

`affairs` is a Kaggle-layout replica built from statsmodels' `fair` table (6,366 marriages, 8 columns, binary
"had an affair"; statsmodels must be installed in the AutoGluon venv, which builds it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "competitions"
# slug, zip, id column, label column, metric, "folds" (5) or "split" (kc's 10 % validation split)
TABLES = {
    "titanic": ("titanic", "PassengerId", "Survived", "accuracy", "folds"),
    "houses": ("house-prices-advanced-regression-techniques", "Id", "SalePrice", "rmse-log", "folds"),
    "affairs": ("affairs", "id", "had_affair", "accuracy", "folds"),
    "otto": ("otto-group-product-classification-challenge", "id", "target", "log-loss", "split"),
}


def affairs_zip(folder: Path) -> Path:
    """A Kaggle-layout zip of statsmodels' `fair`: train.csv, test.csv (a quarter, no label), sample_submission.csv."""
    import numpy as np
    import statsmodels.api as sm

    df = sm.datasets.fair.load_pandas().data.sample(frac=1.0, random_state=0).reset_index(drop=True)
    df["had_affair"] = (df.pop("affairs") > 0).astype(int)
    df["occupation"] = df["occupation"].map(lambda v: f"job{int(v)}")  # a categorical column, as Kaggle ships them
    df.insert(0, "id", np.arange(1, len(df) + 1))
    cut = len(df) * 3 // 4
    train, test = df.iloc[:cut], df.iloc[cut:].drop(columns=["had_affair"])
    path = folder / "affairs.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("train.csv", train.to_csv(index=False))
        z.writestr("test.csv", test.to_csv(index=False))
        z.writestr("sample_submission.csv", test[["id"]].assign(had_affair=0).to_csv(index=False))
    return path


def score(metric: str, y, pred) -> float:
    """The table's metric of out-of-fold predictions: labels (accuracy), log prices (rmse-log) or probabilities."""
    import numpy as np
    from sklearn.metrics import accuracy_score, log_loss

    if metric == "accuracy":
        return float(accuracy_score(y, pred))
    if metric == "rmse-log":
        return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(pred)) ** 2)))
    return float(log_loss(y, pred, labels=sorted(set(y))))


def ag_side(args: argparse.Namespace) -> None:
    """In AutoGluon's venv: one predictor per scored fold, out-of-fold score, test predictions timed."""
    import tempfile

    import numpy as np
    import pandas as pd
    from autogluon.tabular import TabularPredictor

    ws = Path(args.data)
    with zipfile.ZipFile(args.zip) as z:
        train, test = pd.read_csv(z.open("train.csv")), pd.read_csv(z.open("test.csv"))
    fold_of = np.load(ws / "folds.npy")
    train, test = train.drop(columns=[args.id]), test.drop(columns=[args.id])
    problem, eval_metric = {"accuracy": (None, "accuracy"), "rmse-log": ("regression", "root_mean_squared_error"),
                            "log-loss": ("multiclass", "log_loss")}[args.metric]
    if args.metric == "rmse-log":  # House Prices is scored on log prices: AutoGluon learns them, as a user would
        train[args.label] = np.log(train[args.label])
    oof: list = [None] * len(train)
    fit_s = predict_s = 0.0
    for f in map(int, args.score_folds.split(",")):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            predictor = TabularPredictor(args.label, problem_type=problem, eval_metric=eval_metric, path=out,
                                         verbosity=0).fit(train[fold_of != f], presets=args.preset,
                                                          time_limit=args.fold_limit, num_cpus=1)
            fit_s += time.perf_counter() - start
            held = train[fold_of == f].drop(columns=[args.label])
            if args.metric == "log-loss":  # columns in sorted class order, as score() expects
                proba = predictor.predict_proba(held)
                pred = proba[sorted(proba.columns)].to_numpy()
            else:
                pred = predictor.predict(held).to_numpy()
            for i, p in zip(np.flatnonzero(fold_of == f), pred, strict=True):
                oof[i] = p
            start = time.perf_counter()
            if args.test_predict:
                predictor.predict_proba(test) if args.metric == "log-loss" else predictor.predict(test)
            else:  # only the held-out rows (a bagged, stacked ensemble predicting Otto's 144,368 test rows takes long)
                predictor.predict_proba(held) if args.metric == "log-loss" else predictor.predict(held)
            predict_s += time.perf_counter() - start
    scored = [i for i, p in enumerate(oof) if p is not None]
    y = train[args.label].to_numpy()[scored]
    pred = np.stack([oof[i] for i in scored]) if args.metric == "log-loss" else np.array([oof[i] for i in scored])
    print(json.dumps({"score": score(args.metric, y, pred), "fit_s": round(fit_s, 1),
                      "predict_s": round(predict_s, 1), "rows_scored": len(scored)}))


def write_folds(slug: str, ws: Path, kind: str) -> tuple[list[int], int]:
    """kc's folds (or split) of the table's rows, as a fold number per row in folds.npy; the folds AutoGluon scores."""
    import numpy as np

    from pipeline.core import competitions
    from pipeline.core.dataset import load_dataset
    from pipeline.core.workspace import Workspace
    from pipeline.training import splits

    comp = competitions.get(slug, ws)
    y = load_dataset(comp, Workspace(ws), None).y
    groups = splits.strata(comp, y)
    fold_of = np.full(len(y), -1, dtype=np.int64)
    if kind == "split":
        train_idx, valid_idx = splits.split(groups, 0.1, 0)
        fold_of[valid_idx], fold_of[train_idx], scored = 0, 1, [0]
    else:
        for f, part in enumerate(splits.folds(groups, 5, 0)):
            fold_of[part] = f
        scored = list(range(5))
    np.save(ws / "folds.npy", fold_of)
    return scored, len(y)


def latest_run(ws: Path, slug: str) -> dict:
    """metrics.json of the newest run of the competition."""
    runs = sorted((ws / "competitions" / slug / "runs").glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(runs[-1].read_text())


def kc_row(ws: Path, slug: str, kind: str, extra: list[str], label: str) -> dict:
    """`kc train` (+ `kc submit`) on one thread, timed; the run's own score."""
    from scale import timed

    kc = [sys.executable, "-m", "pipeline"]
    folds = ["--folds", "5"] if kind == "folds" else ["--folds", "0"]
    train = timed([*kc, "train", slug, *folds, "--seed", "0", "--threads", "1", "--workspace", str(ws), *extra])
    m = latest_run(ws, slug)
    submit = timed([*kc, "submit", slug, "--workspace", str(ws)])
    return {"peer": label, "score": m["score"], "model": m.get("model", ""), "fit_s": train["cpu_s"],
            "fit_wall_s": train["wall_s"], "predict_s": submit["cpu_s"], "peak_mb": max(train["peak_mb"],
                                                                                     submit["peak_mb"])}


def ag_row(args: argparse.Namespace, ws: Path, zip_path: Path, table: tuple, scored: list[int], preset: str,
           limit: float) -> dict:
    """AutoGluon's side in its own venv under /usr/bin/time: score, fit and predict seconds, peak RSS."""
    from scale import timed

    _, id_col, label, metric, _ = table
    cmd = [args.ag_python, __file__, "--side", "ag", "--data", str(ws), "--zip", str(zip_path), "--id", id_col,
           "--label", label, "--metric", metric, "--preset", preset, "--fold-limit", str(limit),
           "--score-folds", ",".join(map(str, scored)), "--test-predict", str(args.test_predict)]
    done = timed(cmd)
    result = json.loads(done["stdout"].strip().splitlines()[-1])
    what = "" if args.test_predict else ", predict s on the held-out rows"
    return {"peer": f"AutoGluon {preset} ({limit:g} s a fold{what})", "score": result["score"], "model": "",
            "fit_s": result["fit_s"], "fit_wall_s": done["wall_s"], "predict_s": result["predict_s"],
            "cpu_s": done["cpu_s"], "peak_mb": done["peak_mb"]}


def report(ws: Path) -> None:
    """results.jsonl as a Markdown table."""
    print("| table | peer | score | fit s | predict s | peak MB |\n|---|---|---|---|---|---|")
    for line in (ws / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        print(f"| {r['table']} ({r['metric']}) | {r['peer']} | {r['score']:.4f} | {r['fit_s']:.0f} | "
              f"{r['predict_s']:.1f} | {r['peak_mb']} |")


def main() -> None:
    """Parse options; run the driver, AutoGluon's side, or the report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", default="driver", choices=["driver", "ag", "build-affairs"])
    p.add_argument("--tables", default="titanic,houses,affairs,otto")
    p.add_argument("--presets", default="medium_quality:60,best_quality:120", help="preset:seconds a fold, ...")
    p.add_argument("--ag-python", default=str(ROOT.parent / "agvenv" / "bin" / "python"))
    p.add_argument("--workspace", type=Path, default=Path("/tmp/kc-autogluon"))
    p.add_argument("--report", action="store_true")
    p.add_argument("--kc-only", action="store_true")
    p.add_argument("--ag-only", action="store_true", help="AutoGluon's rows only (no kc rows)")
    p.add_argument("--test-predict", type=int, default=1, help="0: AutoGluon times predicting the held-out rows "
                                                                "instead of test.csv")
    for name in ("data", "zip", "id", "label", "metric", "preset", "score-folds"):
        p.add_argument(f"--{name}")
    p.add_argument("--fold-limit", type=float)
    args = p.parse_args()
    if args.side == "ag":
        return ag_side(args)
    if args.side == "build-affairs":
        affairs_zip(Path(args.data))
        return None
    if args.report:
        return report(args.workspace)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for name in args.tables.split(","):
        table = TABLES[name]
        slug, kind = table[0], table[4]
        ws = args.workspace / name
        ws.mkdir(parents=True, exist_ok=True)
        zip_path = SHARED / f"{slug}.zip"
        if name == "affairs":  # built with the AutoGluon venv's statsmodels (kc's venv does not have it)
            zip_path = ws / "affairs.zip"
            if not zip_path.exists():
                subprocess.run([args.ag_python, __file__, "--side", "build-affairs", "--data", str(ws)], check=True)
        if not (ws / "competitions" / slug / "competition.json").exists():
            subprocess.run([sys.executable, "-m", "pipeline", "fetch", slug, "--from", str(zip_path), "--workspace",
                            str(ws)], check=True, capture_output=True)
        scored, _ = write_folds(slug, ws, kind)
        rows = [] if args.ag_only else [kc_row(ws, slug, kind, [], "kc default")]
        limits = [(preset, float(limit)) for preset, limit in (x.split(":") for x in args.presets.split(","))]
        for preset, limit in ([] if args.kc_only else limits):
            rows.append(ag_row(args, ws, zip_path, table, scored, preset, limit))
        if not args.kc_only and not args.ag_only:
            budget = limits[-1][1] * len(scored)
            limit = ["--time-limit", f"{budget:g}"]
            try:
                rows.append(kc_row(ws, slug, kind, limit, f"kc --time-limit {budget:g}"))
            except RuntimeError:  # the default (Titanic's linear model) keeps no budget: lgbm does
                rows.append(kc_row(ws, slug, kind, [*limit, "--model", "lgbm"], f"kc lgbm --time-limit {budget:g}"))
        with (args.workspace / "results.jsonl").open("a") as out:
            for r in rows:
                out.write(json.dumps({"table": name, "metric": table[3], **r}) + "\n")
                print(json.dumps({"table": name, **r}), flush=True)


if __name__ == "__main__":
    main()
