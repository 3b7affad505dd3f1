"""Measure kc against the tools a learner would otherwise reach for, on the full competitions.

    python benchmarks/run.py [--data ../shared/competitions] [--quick] [--only data,digits,titanic,houses,cnn]

Each measurement runs in a fresh process so its peak memory (max RSS) is its own. Prints a Markdown
table; `--out FILE` also writes it with a description of the machine (benchmarks/RESULTS.md is kept by hand).
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import os
import platform
import queue as queue_module
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tables_oof import HOUSES_KINDS, TITANIC_KINDS, houses_oof, titanic_oof  # noqa: E402

import pipeline  # noqa: E402,F401  (kc's OpenMP waits, set before torch or LightGBM starts its runtime)


def _in_child(fn: Callable[..., dict], args: tuple, queue: Any) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    try:
        result = fn(*args)
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        queue.put(result)
    except Exception as exc:  # report, don't hang the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def measure(fn: Callable[..., dict], *args: Any) -> dict:
    """Run `fn(*args)` in a fresh process; return its result dict plus its peak memory."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_in_child, args=(fn, args, queue))
    proc.start()
    while True:  # a child that dies without reporting (killed, out of memory) must not hang the run
        try:
            result = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                try:  # it may have reported just before it ended
                    result = queue.get(timeout=1)
                except queue_module.Empty:
                    result = {"error": f"the measuring process died (exit code {proc.exitcode})"}
                break
    proc.join()
    if "error" in result:  # a failed measurement reads as NaN figures, so the other rows still get written
        print(f"{getattr(fn, '__name__', fn)}{args[:1]}: {result['error']}", file=sys.stderr, flush=True)
        result = collections.defaultdict(lambda: float("nan"), result)
    return result


def workspace_with(data: Path, slugs: tuple[str, ...]) -> Path:
    """A fresh workspace holding the competitions fetched from the zips in `data`."""
    from pipeline.core.workspace import Workspace
    from pipeline.ingest.sources import fetch

    root = Path(tempfile.mkdtemp(prefix="kc-bench-"))
    for slug in slugs:
        fetch(slug, Workspace(root), data / f"{slug}.zip")
    return root


# ---- data path ---------------------------------------------------------------------------------------------


def bench_convert(root: Path) -> dict:
    import statistics

    from pipeline.core import competitions
    from pipeline.core.workspace import Workspace
    from pipeline.pixels import arrays

    comp, ws = competitions.get("digit-recognizer"), Workspace(root)
    folder = ws.data_dir(comp.slug)

    def timed(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    cold = timed(lambda: arrays.read_pixel_csv(folder / "train.csv", comp, label=True))  # first: page cache
    train_s = statistics.median(timed(lambda: arrays.read_pixel_csv(folder / "train.csv", comp, label=True))
                                for _ in range(3))
    both_s = statistics.median(timed(lambda: arrays.convert(comp, ws, force=True)) for _ in range(3))
    return {"cold_s": cold, "train_csv_s": train_s, "both_csv_s": both_s}


def bench_reload(root: Path) -> dict:
    import numpy as np

    from pipeline.core import competitions
    from pipeline.core.workspace import Workspace
    from pipeline.pixels import arrays

    t0 = time.perf_counter()
    cached = arrays.convert(competitions.get("digit-recognizer"), Workspace(root))
    touched = int(np.asarray(cached.train_images[-1]).sum())  # make sure the data is really there
    mapped = time.perf_counter() - t0
    t0 = time.perf_counter()
    total = int(np.array(cached.train_images).sum() + np.array(cached.test_images).sum())  # every page read
    return {"reload_s": mapped, "read_all_s": time.perf_counter() - t0, "from_cache": cached.from_cache,
            "touched": touched + total}


def bench_pngs(root: Path) -> dict:
    from pipeline.core import competitions
    from pipeline.core.workspace import Workspace
    from pipeline.pixels import arrays

    comp, ws = competitions.get("digit-recognizer"), Workspace(root)
    cached = arrays.convert(comp, ws)
    t0 = time.perf_counter()
    _, written = arrays.write_pngs(comp, ws, cached, force=True)
    return {"pngs_s": time.perf_counter() - t0, "written": written}


# ---- models ------------------------------------------------------------------------------------------------


def _digits(root: Path, limit: int) -> tuple:
    from pipeline.core import competitions
    from pipeline.core.dataset import load_dataset
    from pipeline.core.workspace import Workspace
    from pipeline.training import splits

    data = load_dataset(competitions.get("digit-recognizer"), Workspace(root))
    X, y = data.X[:limit], data.y[:limit]
    tr, va = splits.split(y, 0.1, 0)
    return X[tr], y[tr], X[va], y[va], data


def fit_score(kind: str, root: Path, limit: int, params: dict) -> dict:
    """Fit one model on the digits split; report validation accuracy and times."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    from pipeline.core import competitions
    from pipeline.models import model_class

    Xtr, ytr, Xva, yva, _ = _digits(root, limit)
    if kind.startswith("kc-"):
        model = model_class(kind[3:], competitions.get("digit-recognizer")).from_params(params)
        t0 = time.perf_counter()
        model.fit(Xtr, ytr, Xva, yva)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = model.predict(Xva)
        predict_s = time.perf_counter() - t0
    else:
        flat_tr = Xtr.reshape(len(Xtr), -1).astype(np.float32) / 255
        flat_va = Xva.reshape(len(Xva), -1).astype(np.float32) / 255
        est = KNeighborsClassifier(n_neighbors=3, n_jobs=-1) if kind == "sk-knn" else LogisticRegression(max_iter=200)
        t0 = time.perf_counter()
        est.fit(flat_tr, ytr)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = est.predict(flat_va)
        predict_s = time.perf_counter() - t0
    return {"acc": float(np.mean(pred == yva)), "fit_s": fit_s, "predict_s": predict_s, "rows": len(Xtr)}


def knn_full_test(kind: str, root: Path, limit: int) -> dict:
    """The issue's kNN target: fit on all train rows and predict every test row."""
    import numpy as np

    from pipeline.core import competitions
    from pipeline.core.dataset import load_dataset
    from pipeline.core.workspace import Workspace

    data = load_dataset(competitions.get("digit-recognizer"), Workspace(root))
    from sklearn.neighbors import KNeighborsClassifier

    from pipeline.models.knn import KNNModel

    X, y, Xt = data.X[:limit], data.y[:limit], data.X_test[: max(1, limit * 2 // 3)]
    t0 = time.perf_counter()
    if kind == "kc-knn":
        KNNModel().fit(X, y).predict(Xt)
    else:
        est = KNeighborsClassifier(n_neighbors=3, n_jobs=-1)
        est.fit(X.reshape(len(X), -1).astype(np.float32) / 255, y)
        est.predict(Xt.reshape(len(Xt), -1).astype(np.float32) / 255)
    return {"seconds": time.perf_counter() - t0, "train": len(X), "test": len(Xt)}


def fastai_simple_cnn(root: Path, limit: int, budget_s: float) -> dict:
    """fastbook chapter 13's simple_cnn, trained with fit_one_cycle for as many epochs as fit in the budget."""
    import numpy as np
    import torch
    from fastai.callback.progress import ProgressCallback  # noqa: F401
    from fastai.callback.schedule import fit_one_cycle  # noqa: F401
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.metrics import accuracy
    from torch import nn

    from pipeline.models._torch import loader as _loader
    from pipeline.pixels import images

    def conv(ni: int, nf: int, ks: int = 3, act: bool = True) -> nn.Sequential:
        layers = [nn.Conv2d(ni, nf, stride=2, kernel_size=ks, padding=ks // 2), nn.BatchNorm2d(nf)]
        return nn.Sequential(*layers, nn.ReLU()) if act else nn.Sequential(*layers)

    def simple_cnn() -> nn.Sequential:
        return nn.Sequential(conv(1, 8, ks=5), conv(8, 16), conv(16, 32), conv(32, 64), conv(64, 10, act=False),
                             nn.Flatten())

    Xtr, ytr, Xva, yva, _ = _digits(root, limit)
    xt, xv = torch.from_numpy(images.to_float(Xtr)), torch.from_numpy(images.to_float(Xva))
    dls = DataLoaders(_loader(xt, torch.from_numpy(ytr), bs=256, shuffle=True, seed=0),
                      _loader(xv, torch.from_numpy(yva), bs=512, shuffle=False, seed=0))
    torch.manual_seed(0)
    probe = Learner(dls, simple_cnn(), loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
    t0 = time.perf_counter()
    with probe.no_bar(), probe.no_logging():
        probe.fit_one_cycle(1, 0.06)
    epoch_s = time.perf_counter() - t0
    epochs = max(1, int(budget_s // epoch_s))
    torch.manual_seed(0)
    learn = Learner(dls, simple_cnn(), loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, 0.06)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        pred = learn.model.eval()(xv).argmax(1).numpy()
    return {"acc": float(np.mean(pred == yva)), "fit_s": fit_s, "predict_s": time.perf_counter() - t0,
            "epochs": epochs, "rows": len(Xtr)}


# ---- report ------------------------------------------------------------------------------------------------


def machine() -> str:
    """One line describing where the figures were measured."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {platform.system()} {platform.release()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "competitions")
    parser.add_argument("--quick", action="store_true", help="a subset that finishes in a couple of minutes")
    parser.add_argument("--only", default="data,digits,titanic,houses,cnn", help="comma-separated sections")
    parser.add_argument("--out", type=Path, default=None, help="also write the table and the machine here")
    args = parser.parse_args()
    sections = set(args.only.split(","))
    limit = 6000 if args.quick else 42000
    from pipeline.models.cnn import CNNModel

    cnn_epochs = 1 if args.quick else CNNModel.epochs  # the default recipe (and its batch size)
    rows: list[tuple[str, str, str, str, str, str]] = []  # what, kc, peer, kc/peer time, target, met

    def row(*cells: str) -> None:
        rows.append(cells)  # type: ignore[arg-type]
        print(" | ".join(cells), flush=True)

    def fmt(r: dict, key: str = "acc") -> str:
        if "error" in r:
            return f"error: {r['error']}"
        return f"{100 * r[key]:.2f}% · fit {r['fit_s']:.1f}s · predict {r['predict_s']:.2f}s · {r['peak_mb']:.0f} MB"

    root = workspace_with(args.data, ("titanic", "digit-recognizer", "house-prices-advanced-regression-techniques"))
    print(f"workspace {root}; {'quick' if args.quick else 'full'} run", flush=True)
    if "data" in sections:
        c = measure(bench_convert, root)
        row("digit CSVs -> cached arrays (median of 3)", f"train.csv {c['train_csv_s']:.2f}s (first, cold: "
            f"{c['cold_s']:.2f}s); train+test parsed, validated and cached {c['both_csv_s']:.2f}s; "
            f"{c['peak_mb']:.0f} MB", "-", "-", "train.csv ≤ 1.5 s", "yes" if c["train_csv_s"] <= 1.5 else "NO")
        r = measure(bench_reload, root)
        row("cached reload", f"{r['reload_s']:.3f}s memory-mapped; {r['read_all_s']:.3f}s more to read every "
            f"pixel; {r['peak_mb']:.0f} MB", "-", "-", "≤ 0.1 s",
            "yes" if r["reload_s"] <= 0.1 else "NO")
        p = measure(bench_pngs, root)
        row(f"{p['written']:,} PNGs", f"{p['pngs_s']:.1f}s, {p['peak_mb']:.0f} MB", "-", "-", "≤ 20 s",
            "yes" if p["pngs_s"] <= 20 else "NO")
    if "digits" in sections:
        kc_knn, sk_knn = measure(fit_score, "kc-knn", root, limit, {}), measure(fit_score, "sk-knn", root, limit, {})
        ratio = (kc_knn["fit_s"] + kc_knn["predict_s"]) / (sk_knn["fit_s"] + sk_knn["predict_s"])
        row("digits knn (valid)", fmt(kc_knn), "sklearn k=3: " + fmt(sk_knn), f"{ratio:.2f}", "≥ 98.0 %",
            "yes" if kc_knn["acc"] >= 0.98 else "NO")
        kc_t, sk_t = measure(knn_full_test, "kc-knn", root, limit), measure(knn_full_test, "sk-knn", root, limit)
        row(f"digits knn fit+predict {kc_t['test']:,} vs {kc_t['train']:,}", f"{kc_t['seconds']:.2f}s",
            f"sklearn k=3: {sk_t['seconds']:.2f}s", f"{kc_t['seconds'] / sk_t['seconds']:.2f}",
            "≤ 5 s, faster than sklearn", "yes" if kc_t["seconds"] <= 5 and kc_t["seconds"] < sk_t["seconds"] else "NO")
        kc_lin, sk_lin = measure(fit_score, "kc-linear", root, limit, {}), measure(fit_score, "sk-logistic", root,
                                                                                   limit, {})
        row("digits linear (valid)", fmt(kc_lin), "sklearn LogisticRegression: " + fmt(sk_lin),
            f"{kc_lin['fit_s'] / sk_lin['fit_s']:.2f}", "≥ 92 %", "yes" if kc_lin["acc"] >= 0.92 else "NO")
    if "titanic" in sections:
        results = {k: measure(titanic_oof, k, root) for k in TITANIC_KINDS}
        peer = results["sk-logistic"]
        for kind, r in results.items():
            if "error" in r:
                row(f"titanic {kind} (5-fold OOF)", f"error: {r['error']}", "-", "-", "-", "-")
                continue
            default = kind == "kc-linear"
            ratio = f"{r['fit_s'] / peer['fit_s']:.2f}" if kind.startswith("kc-") and "fit_s" in peer else "-"
            row(f"titanic {kind}{', the default' if default else ''} (5-fold OOF, 891 rows)",
                f"{100 * r['acc']:.2f}% ± {100 * r['std']:.2f} · mean of fold seeds 0-4: {100 * r['seeds_acc']:.2f}% · "
                f"fit {r['fit_s']:.2f}s", "-", ratio, "≥ 84 % (5-fold OOF)" if default else "-",
                ("yes" if r["acc"] >= 0.84 else "NO") if default else "-")
    if "houses" in sections:
        results = {k: measure(houses_oof, k, root) for k in HOUSES_KINDS}
        for kind, r in results.items():
            if "error" in r:
                row(f"house prices {kind} (5-fold OOF RMSE of logs)", f"error: {r['error']}", "-", "-", "-", "-")
                continue
            default = kind == "kc-blend"
            row(f"house prices {kind}{' (default)' if default else ''} (5-fold OOF RMSE of logs, 1,460 rows)",
                f"{r['rmse']:.4f} ± {r['std']:.4f} · without Ids 524, 1299: {r['usual']:.4f} · mean of fold seeds "
                f"0-2: {r['seeds_rmse']:.4f} ({r['seeds_usual']:.4f} without) · fit {r['fit_s']:.1f}s", "-", "-",
                "≤ 0.118" if default else "-", ("yes" if r["rmse"] <= 0.118 else "NO") if default else "-")
    if "cnn" in sections:
        kc_cnn = measure(fit_score, "kc-cnn", root, limit, {"epochs": cnn_epochs})
        budget = kc_cnn.get("fit_s", 60.0)
        peer = measure(fastai_simple_cnn, root, limit, budget)
        ok = kc_cnn.get("acc", 0) >= 0.996 and kc_cnn.get("fit_s", 1e9) <= 600
        row(f"digits cnn (valid, {cnn_epochs} epochs)", fmt(kc_cnn),
            f"fastai simple_cnn, {peer.get('epochs')} epochs in the same budget: " + fmt(peer),
            f"{kc_cnn.get('fit_s', 0) / max(peer.get('fit_s', 1), 1e-9):.2f}", "≥ 99.6 % in ≤ 10 min",
            "yes" if ok else "NO")
    header = "| measurement | kc | peer | time kc/peer | target | met |\n|---|---|---|---|---|---|\n"
    table = header + "".join("| " + " | ".join(r) + " |\n" for r in rows)
    mode = "quick subset (6,000 digit rows)" if args.quick else "full data"
    text = (f"# kc benchmarks\n\n`python benchmarks/run.py{' --quick' if args.quick else ''}` on {mode}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}.\n\nMachine: {machine()}\n\n{table}")
    print("\n" + table)
    if args.out:
        args.out.write_text(text)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
