"""Digits CNN recipe variants kc tried and did not keep, each against a plain fit on the same 10 % split.

    python benchmarks/cnn_recipes.py --variant averaged|resized [--split-seed 1] [--epochs 12] [--bs 128]
        [--threads 1] [--small 20] [--small-epochs 7] [--rows N] [--data ../shared/competitions]

The defaults (12 epochs of 128) are the recipe the variants were measured against in RESULTS.md (ninth session);
kc's default is now 9 epochs of 64.

- `averaged`: one fit; its final weights scored beside exponential moving averages of the weights (decays
  0.998, 0.999, 0.9995, batch-norm statistics averaged too) and the mean of the last three epochs' weights (as is,
  and with batch-norm statistics recomputed on the training rows). One fit, so the comparison is paired.
- `resized`: progressive resizing. The first `--small-epochs` epochs train on `--small`×`--small` digits (the
  augmentation's resampling makes them, at no extra cost), the rest at 28×28; validation is always at 28×28.

Both reach into `CNNModel._learner` to add a fastai callback: a benchmark of ideas, not of kc's API. Prints one JSON
line per fit: accuracies on the 4,200 held-out rows, wall and CPU seconds, seconds per epoch.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import pipeline  # noqa: E402,F401  (kc's OpenMP waits, set before torch or LightGBM starts its runtime)

sys.path.insert(0, str(ROOT / "benchmarks"))
warnings.filterwarnings("ignore")

DECAYS = (0.998, 0.999, 0.9995)


def main() -> None:
    import torch
    from cnn_speed import cpu_name, digits
    from fastai.callback.core import Callback
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from pipeline.models import cnn
    from pipeline.models.cnn import CNNModel, augment
    from pipeline.pixels import images
    from pipeline.training import splits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("averaged", "resized"), required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "competitions")
    parser.add_argument("--split-seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--bs", type=int, default=128, help="batch size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=100_000, help="at most this many training rows (a quick check)")
    parser.add_argument("--small", type=int, default=20, help="resized: the early epochs' image side")
    parser.add_argument("--small-epochs", type=int, default=7, help="resized: how many epochs train small")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    side = [28]

    class Averages(Callback):
        """Exponential moving averages of the weights after every step; the last three epochs' weights."""

        order = 95

        def before_fit(self) -> None:
            self.ema = {d: AveragedModel(self.learn.model, multi_avg_fn=get_ema_multi_avg_fn(d), use_buffers=True)
                        for d in DECAYS}
            self.last: list[dict] = []

        def after_batch(self) -> None:
            if self.training:
                for ema in self.ema.values():
                    ema.update_parameters(self.learn.model)

        def after_epoch(self) -> None:
            if self.epoch >= self.n_epoch - 3:
                self.last.append(copy.deepcopy(self.learn.model.state_dict()))

    class Sides(Callback):
        """The image side each epoch trains at."""

        order = 0

        def before_epoch(self) -> None:
            side[0] = args.small if self.epoch < args.small_epochs else 28

    def resized(x: torch.Tensor, gen: torch.Generator, rotate: float, zoom: float, shift: float) -> torch.Tensor:
        """kc's augmentation, resampled onto a side[0]×side[0] grid."""
        return augment(x, gen, rotate, zoom, shift, size=(side[0], side[0]))

    extra = Averages() if args.variant == "averaged" else Sides()
    if args.variant == "resized":
        cnn.augment = resized  # CNNModel's augmentation looks the name up at each batch
    learner = CNNModel._learner

    def with_extra(self: CNNModel, *a: object, **kw: object) -> tuple:
        learn, watch, n = learner(self, *a, **kw)
        learn.add_cb(extra)
        return learn, watch, n

    CNNModel._learner = with_extra  # type: ignore[method-assign]
    X, y = digits(args.data / "digit-recognizer.zip")
    train, valid = splits.split(y, 0.1, args.split_seed)
    train = train[: args.rows]
    times, last = [], [time.perf_counter()]

    def on_epoch(_record: object) -> None:
        times.append(round(time.perf_counter() - last[0], 1))
        last[0] = time.perf_counter()

    model = CNNModel(epochs=args.epochs, bs=args.bs, seed=args.split_seed, threads=args.threads, precision="fp32")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    model.fit(X[train], y[train], X[valid], y[valid], on_epoch=on_epoch)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    assert model.net_ is not None
    scores: dict[str, float] = {}

    def score(name: str, state: dict) -> None:
        model.net_.load_state_dict(state)
        model.net_.eval()  # batch norm from its running statistics, no dropout
        scores[name] = round(100 * float(np.mean(model.predict(X[valid]) == y[valid])), 2)

    final = copy.deepcopy(model.net_.state_dict())
    score("final", final)
    if isinstance(extra, Averages):
        for d, ema in extra.ema.items():
            score(f"ema {d}", ema.module.state_dict())
        mean = {k: sum(s[k].float() for s in extra.last) / len(extra.last) if v.is_floating_point() else v
                for k, v in final.items()}
        score("last 3 epochs' mean", mean)
        model.net_.load_state_dict(mean)
        for m in model.net_.modules():  # batch-norm statistics of the averaged weights, from the training rows
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        model.net_.train()
        with torch.no_grad():
            xt = torch.from_numpy(images.to_float(X[train]))
            for i in range(0, len(xt), 512):
                model.net_(xt[i : i + 512])
        score("last 3 epochs' mean, batch norm recomputed", model.net_.state_dict())
    print(json.dumps({"cpu": cpu_name(), "variant": args.variant, "split_seed": args.split_seed,
                      "epochs": args.epochs, "threads": args.threads, "wall_s": round(wall), "cpu_s": round(cpu),
                      "epoch_s": times, "valid_accuracy": scores}), flush=True)


if __name__ == "__main__":
    main()
