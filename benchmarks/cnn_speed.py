"""Digits CNN speed: seconds per epoch on this CPU, kc's fastai loop against a plain PyTorch loop of the same network.

    python benchmarks/cnn_speed.py [--data ../shared/competitions] [--rows 8000] [--epochs 1] [--threads 0]
        [--loops kc,plain] [--precisions fp32,bf16] [--widths 32] [--full-res 0,1] [--pools concat,avg] [--bs 128]
        [--valid 0] [--split-seeds 0] [--model-seed N] [--param elastic=20 ...]

Trains on the first `--rows` rows of the 90 % side of kc's 10 % split and, with `--valid 1`, scores the 4,200
held-out rows (kc's loop then validates on them after every epoch, as `kc train` does, so its epoch time includes
that pass). Each of `--split-seeds` draws its own split and seeds the model with the same number, so three seeds
give three independent 10 % splits (`--model-seed N` seeds every model with N instead). Reports wall and CPU
seconds (`time.process_time`, all threads) per epoch and in total, the 1-minute load before each run and the CPU's
name, as a Markdown table. bf16 is measured only where the CPU has it natively (emulated bf16 is several times
slower than fp32 and no path kc would pick), unless `--force-bf16`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import pipeline  # noqa: E402,F401  (kc's OpenMP waits, set before torch or LightGBM starts its runtime)

warnings.filterwarnings("ignore")


CACHE = Path(tempfile.gettempdir()) / "kc-bench-digits.npz"


def cpu_name() -> str:
    """The CPU's model name with its family and model numbers (which tell AMD's Zen generations apart)."""
    info = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    name = info.get("model name", platform.processor())
    return f"{name} (family {info.get('cpu family')}, model {info.get('model')})"


def digits(zip_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(n, 28, 28) uint8 images and labels from Kaggle's train.csv, cached beside the temp folder."""
    if not CACHE.exists():
        import pandas as pd

        with zipfile.ZipFile(zip_path) as z:
            frame = pd.read_csv(z.open("train.csv"))
        y = frame.pop("label").to_numpy()
        np.savez(CACHE, X=frame.to_numpy().astype(np.uint8).reshape(-1, 28, 28), y=y)
    saved = np.load(CACHE)
    return saved["X"], saved["y"]


# CNNModel options this benchmark sets from its own flags (or per run), so --param may not
OWN_FLAGS = frozenset({"epochs", "width", "full_res", "precision", "threads", "bs", "seed", "pool"})


def plain_loop(X: np.ndarray, y: np.ndarray, epochs: int, width: int, full_res: bool, bf16: bool,
               Xv: np.ndarray | None, yv: np.ndarray | None, bs: int, seed: int,
               pool: str) -> tuple[list[float], np.ndarray | None]:
    """The same network, optimiser, schedule, loss and augmentation as kc's default, in a bare PyTorch loop."""
    import torch
    import torch.nn.functional as F

    from pipeline.models import _torch
    from pipeline.models.cnn import Autocast, CNNModel, augment, digit_resnet
    from pipeline.pixels import images

    m = CNNModel(bs=bs)
    torch.manual_seed(seed)
    net = Autocast(digit_resnet(width, 10, full_res, pool=pool), bf16).to(memory_format=torch.channels_last)
    x, t = torch.from_numpy(images.to_float(X)), torch.from_numpy(y).long()
    batches = _torch.loader(x, t, bs=m.bs, shuffle=True, seed=seed)
    opt = torch.optim.AdamW(net.parameters(), lr=m.lr, weight_decay=m.weight_decay, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, m.lr, total_steps=epochs * len(batches), pct_start=0.25,
                                                base_momentum=0.85, max_momentum=0.95)
    gen, times = torch.Generator().manual_seed(seed + 1), []
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        for xb, yb in batches:
            xb = augment(xb, gen, m.rotate, m.zoom, m.shift)
            loss = F.cross_entropy(net(xb), yb, label_smoothing=m.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        times.append(time.perf_counter() - start)
    if Xv is None:
        return times, None
    net.eval()
    with torch.no_grad():
        xv = torch.from_numpy(images.to_float(Xv))
        out = torch.cat([net(xv[i : i + 1024]) for i in range(0, len(xv), 1024)])
    return times, out.argmax(1).numpy()


def kc_loop(X: np.ndarray, y: np.ndarray, epochs: int, width: int, full_res: bool, bf16: bool,
            Xv: np.ndarray | None, yv: np.ndarray | None, bs: int, seed: int,
            pool: str, **params: str) -> tuple[list[float], np.ndarray | None]:
    """kc's CNNModel.fit (fastai Learner, callbacks, a validation pass per epoch on `Xv` when given); `params`: more
    options, as `kc train -p` takes them."""
    import torch

    from pipeline.models.cnn import CNNModel

    times, last = [], [time.perf_counter()]

    def on_epoch(record: dict) -> None:
        times.append(time.perf_counter() - last[0])
        last[0] = time.perf_counter()

    model = CNNModel.from_params({"epochs": epochs, "width": width, "full_res": full_res,
                                  "precision": "bf16" if bf16 else "fp32", "threads": torch.get_num_threads(),
                                  "bs": bs, "seed": seed, "pool": pool, **params})
    model.fit(X, y, Xv, yv, on_epoch=on_epoch)
    return times, None if Xv is None else model.predict(Xv)


def main() -> None:
    import torch

    from pipeline.models.cnn import bf16_ok
    from pipeline.training import splits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "competitions")
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: what kc picks)")
    parser.add_argument("--loops", default="kc,plain")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--widths", default="16")
    parser.add_argument("--full-res", default="0", help="0: kc's default network (no 28×28 block), 1: with one")
    parser.add_argument("--pools", default="concat", help="the head's pooling: concat (kc's default) or avg")
    parser.add_argument("--bs", type=int, default=128, help="batch size")
    parser.add_argument("--split-seeds", default="0", help="seeds of the 10 %% split (and of the model), e.g. 0,1,2")
    parser.add_argument("--model-seed", type=int, default=None, help="seed every model with this (default: the "
                        "split's seed)")
    parser.add_argument("--valid", type=int, default=0, help="1: score the 4,200 held-out rows")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="another CNNModel option for kc's loop, as `kc train -p` takes it (repeatable)")
    parser.add_argument("--force-bf16", action="store_true", help="measure bf16 even where it is emulated")
    args = parser.parse_args()
    params = {}
    for pair in args.param:
        key, eq, value = pair.partition("=")
        if not eq:
            parser.error(f"--param {pair}: expected KEY=VALUE")
        if key in OWN_FLAGS:
            parser.error(f"--param {key}: this benchmark sets it (see its own flags)")
        params[key] = value
    from pipeline.models import _torch

    threads = args.threads or _torch.idle_cores()
    torch.set_num_threads(threads)
    X, y = digits(args.data / "digit-recognizer.zip")
    native = bf16_ok(torch.device("cpu"))
    cpu = cpu_name()
    print(f"CPU: {cpu}, {os.cpu_count()} cores, native bf16: {native}, torch {torch.__version__}, "
          f"{threads} threads; at most {args.rows} training rows, batch {args.bs}, {args.epochs} epochs"
          + "".join(f", {k}={v}" for k, v in params.items()) + " (kc's loop)" * bool(params) + "\n")
    print("| split seed | loop | precision | width | 28×28 block | pool | epoch wall s | epoch CPU s | total wall s | "
          "total CPU s | load | valid acc |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    loops = {"kc": kc_loop, "plain": plain_loop}
    for seed, width in itertools.product(map(int, args.split_seeds.split(",")), map(int, args.widths.split(","))):
        train, valid = splits.split(y, 0.1, seed)
        train = train[: args.rows]
        for full_res, pool in itertools.product((bool(int(f)) for f in args.full_res.split(",")),
                                                args.pools.split(",")):
            for precision in args.precisions.split(","):
                if precision == "bf16" and not (native or args.force_bf16):
                    continue
                for name in args.loops.split(","):
                    load = os.getloadavg()[0]
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    Xv, yv = (X[valid], y[valid]) if args.valid else (None, None)
                    times, pred = loops[name](X[train], y[train], args.epochs, width, full_res, precision == "bf16",
                                              Xv, yv, args.bs, seed if args.model_seed is None else args.model_seed,
                                              pool, **(params if name == "kc" else {}))
                    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
                    acc = f"{100 * np.mean(pred == y[valid]):.2f}%" if pred is not None else "-"
                    print(f"| {seed} | {name} | {precision} | {width} | {'yes' if full_res else 'no'} | {pool} | "
                          f"{np.mean(times):.1f} | {cpu_s / args.epochs:.1f} | {wall_s:.0f} | {cpu_s:.0f} | "
                          f"{load:.1f} | {acc} |", flush=True)


if __name__ == "__main__":
    main()
