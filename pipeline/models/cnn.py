"""A small ResNet for digits, built from fastai layers and trained from scratch with a fastai Learner."""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core import tracking
from pipeline.core.errors import UsageError
from pipeline.models import _torch
from pipeline.models._fastai import LrFound, Watch, find_lr, one_cycle
from pipeline.models.base import EpochCallback, Model
from pipeline.pixels import images

# fastai's modules decorate with torch.jit.script, which this torch deprecates loudly at import
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")


POOLS = ("concat", "avg")


def digit_resnet(width: int = 16, classes: int = 10, full_res: bool = False, channels: int = 1,
                 pool: str = "concat") -> nn.Sequential:
    """28×28 -> 14×14 -> 7×7 residual stages (fastai ConvLayer/ResBlock, batch norm), global pooling, linear head.

    `full_res` adds a residual block at 28×28: it holds the largest activations and costs about a third more CPU per
    epoch without bfloat16 (width 16: 10.1 against 7.5 CPU s per 4,000 rows), so the default leaves it out (see
    benchmarks/RESULTS.md, issue 25). `pool` "concat" feeds the head each channel's maximum beside its mean
    (fastai's AdaptiveConcatPool2d), "avg" the mean alone (kc's network before 2026-12-02).
    """
    from fastai.layers import AdaptiveConcatPool2d, ConvLayer, ResBlock

    if pool not in POOLS:
        raise UsageError(f"pool={pool!r}: expected {' or '.join(POOLS)}")
    w, pooled = width, 8 * width if pool == "concat" else 4 * width
    return nn.Sequential(
        ConvLayer(channels, w, ks=3),  # (n, w, 28, 28); channels 3 for RGB image files
        *([ResBlock(1, w, w)] if full_res else []),
        ResBlock(1, w, 2 * w, stride=2),  # (n, 2w, 14, 14)
        ResBlock(1, 2 * w, 2 * w),
        ResBlock(1, 2 * w, 4 * w, stride=2),  # (n, 4w, 7, 7)
        ResBlock(1, 4 * w, 4 * w),
        AdaptiveConcatPool2d(1) if pool == "concat" else nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(pooled, classes),
    )


def augment(x: torch.Tensor, gen: torch.Generator, rotate: float, zoom: float, shift: float,
            size: tuple[int, int] | None = None, elastic: float = 0.0) -> torch.Tensor:
    """Random small rotations, zooms and shifts (up to `shift` pixels of these images) of a (n, c, h, w) batch, and
    with `elastic` > 0 elastic distortions (Simard et al. 2003: uniform noise per pixel, smoothed by a Gaussian of
    4 pixels, times `elastic` pixels), resampled onto a `size` grid (default: h×w).

    Never flips (a flipped 2 is no digit).
    """
    n, (h, w) = len(x), x.shape[-2:]
    u = torch.rand(n, 4, generator=gen) * 2 - 1  # uniform in [-1, 1]
    angle = u[:, 0] * math.radians(rotate)
    scale = 1 + u[:, 1] * zoom
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid's coordinates run from -1 to 1 across the image: one pixel is 2 / w across, 2 / h down
    theta = torch.stack([torch.stack([cos, -sin, u[:, 2] * shift * 2 / w], 1),
                         torch.stack([sin, cos, u[:, 3] * shift * 2 / h], 1)], 1)
    out_h, out_w = size or (h, w)
    grid = F.affine_grid(theta.to(x.device), [n, x.shape[1], out_h, out_w], align_corners=False)
    if elastic > 0:
        grid = grid + (elastic * smooth_noise(n, out_h, out_w, gen) * torch.tensor([2 / w, 2 / h])).to(x.device)
    background = x.amin()  # normalised 0, so borders stay paper
    return F.grid_sample(x - background, grid, align_corners=False, padding_mode="zeros") + background


def smooth_noise(n: int, h: int, w: int, gen: torch.Generator, sigma: float = 4.0) -> torch.Tensor:
    """(n, h, w, 2) displacements: uniform noise in [-1, 1] per pixel and axis, blurred by a Gaussian of `sigma`
    pixels (its kernel sums to 1, so they come out small: about 0.04 at sigma 4, less near the edges)."""
    noise = torch.rand(n, 2, h, w, generator=gen) * 2 - 1
    return (blur_matrix(h, sigma) @ noise @ blur_matrix(w, sigma).T).permute(0, 2, 3, 1)


def blur_matrix(size: int, sigma: float) -> torch.Tensor:
    """(size, size) Gaussian blur along one axis, zeros beyond the edges (a product costs less than a one-channel
    convolution here)."""
    offsets = torch.arange(size)
    taps = torch.exp(-0.5 * ((offsets[:, None] - offsets[None, :]) / sigma) ** 2)
    return taps / taps.sum(1).max()  # each row sums to 1 away from the edges


def bf16_ok(dev: torch.device) -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (about 3x faster than float32 here)."""
    return dev.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def compute_note(dev: torch.device, bf16: bool, threads: int) -> str:
    """A short note on the path chosen: "fp32 channels-last, 1 thread (no native bfloat16 on this CPU)"."""
    if dev.type != "cpu":
        return f"{'bf16 autocast' if bf16 else 'fp32'} on {dev.type}"
    why = {(True, True): "", (True, False): " (no native bfloat16 on this CPU: emulated, slow)",
           (False, True): " (asked for)", (False, False): " (no native bfloat16 on this CPU)"}[bf16, bf16_ok(dev)]
    kind = "bf16 autocast" if bf16 else "fp32"
    return f"{kind} channels-last, {threads} thread{'s' if threads > 1 else ''}{why}"


class Autocast(nn.Module):
    """Run the wrapped network under bfloat16 autocast on its input's device; outputs come back as float32."""

    def __init__(self, net: nn.Module, enabled: bool):
        super().__init__()
        self.net, self.enabled = net, enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward pass in channels-last memory layout, mixed precision when enabled."""
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.enabled):
            return self.net(x).float()


@dataclasses.dataclass
class CNNModel(Model):
    """fastai Learner, one-cycle schedule, digit-safe augmentation, label smoothing; keeps the last epoch."""

    name: ClassVar[str] = "cnn"
    tasks: ClassVar[tuple[str, ...]] = ("binary", "multiclass")
    fastai: ClassVar[bool] = True
    modalities: ClassVar[tuple[str, ...]] = ("pixels", "images")
    space: ClassVar[dict[str, str]] = {"epochs": "4:20", "lr": "1e-3:1e-2:log", "width": "16|32|48",
                                       "weight_decay": "1e-3:0.1:log", "label_smoothing": "0:0.2", "rotate": "0:15",
                                       "elastic": "0:40"}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"pool": POOLS, "precision": ("auto", "bf16", "fp32"),
                                                     "device": ("auto", "cpu", "cuda")}
    # 9 epochs of batches of 64 score as 12 of 128 did (99.60, 99.57, 99.45 % on three 10 % splits against 99.62,
    # 99.57, 99.45) in about 0.8 of the time: twice the steps per epoch for 4 % more time per epoch (RESULTS.md)
    epochs: int = 9
    lr: float = 4e-3
    bs: int = 64  # at most the training rows (fewer rows train in one batch)
    width: int = 16  # 32 with full_res: the older, slower recipe (about 4.7x the CPU per epoch, see the README)
    weight_decay: float = 0.01
    rotate: float = 10.0  # degrees
    zoom: float = 0.1
    shift: float = 2.0  # pixels
    elastic: float = 0.0  # elastic distortions' scale (Simard's alpha, in pixels; 20 moves strokes about 0.8 pixel)
    label_smoothing: float = 0.1
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto (bfloat16 where the CPU has it), bf16 or fp32
    full_res: bool = False  # a residual block at 28×28 too: about a third more CPU per epoch
    # the head sees each channel's max beside its mean: 99.67, 99.69, 99.52 % on three 10 % splits against the mean
    # alone's 99.60, 99.57, 99.45, at the same cost (RESULTS.md, 2026-12-02); "avg": the mean alone
    pool: str = "concat"
    threads: int = 0  # torch threads; 0: the cores not busy when training starts
    time_limit: float = 0.0  # seconds one fit may take (0 = no limit): fewer epochs if short; kc shares --time-limit

    net_: nn.Module | None = dataclasses.field(default=None, init=False, repr=False)

    # bounds past which augmentation or the loss leaves nothing to learn (blank or degenerate images, uniform targets)
    limits: ClassVar[dict[str, tuple[float, str]]] = {
        "zoom": (0.5, "past it some digits shrink to less than half their size, at 1 to a point"),
        "label_smoothing": (0.99, "at 1 every class is equally right and nothing is learnt"),
        "elastic": (100.0, "at 100 strokes bend about 4 pixels; Simard et al. used 34"),
    }

    def check_options(self, shape: tuple[int, ...] | None = None) -> None:
        """Refuse augmentation and smoothing that would train on blank or degenerate images, and on images of `shape`
        ((n, rows, columns[, 3])) a shift of half their side or more."""
        for key, (most, why) in self.limits.items():
            if not 0 <= getattr(self, key) <= most:  # NaN too
                raise UsageError(f"option {key}={getattr(self, key)}: must be at most {most:g} ({why})")
        side = min(shape[1:3]) if shape is not None and len(shape) in (3, 4) else None
        if side is not None and not 0 <= 2 * self.shift < side:  # in pixels of these images
            raise UsageError(f"option shift={self.shift:g}: must be less than {side / 2:g} pixels, half the side of "
                             f"these {side}-pixel images; pass a smaller -p shift=")

    def _inputs(self, X: np.ndarray) -> torch.Tensor:
        if X.dtype != np.uint8 or X.ndim not in (3, 4):
            raise UsageError("the cnn model takes (n, rows, columns) or RGB (n, rows, columns, 3) uint8 images")
        return torch.from_numpy(images.to_float(np.asarray(X)))

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> CNNModel:
        """Train one cycle (fewer epochs when `time_limit` says so); report each epoch; Ctrl-C stops and keeps the
        best epoch so far (see `Watch`)."""
        started = time.monotonic()
        learn, watch, n_threads = self._learner(X, y, X_valid, y_valid, on_epoch)
        with _torch.threads(n_threads):
            one_cycle(learn, watch, self.epochs, self.lr, self.time_limit, started)
        self.interrupted_, self.out_of_time_ = watch.interrupted, watch.out_of_time
        self.net_ = learn.model.eval()
        return self

    def lr_find(self, X: np.ndarray, y: np.ndarray) -> LrFound:
        """fastai's learning-rate finder on these rows (the model is not trained by it)."""
        learn, _, n_threads = self._learner(X, y, None, None, None)
        with _torch.threads(n_threads):
            return find_lr(learn)

    def _learner(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None, y_valid: np.ndarray | None,
                 on_epoch: EpochCallback | None) -> tuple[Any, Watch, int]:
        """(the fastai Learner, the callback watching it, threads to train on), ready to fit."""
        from fastai.callback.progress import ProgressCallback  # noqa: F401 (adds Learner.no_bar)
        from fastai.data.core import DataLoaders
        from fastai.learner import Learner
        from fastai.losses import LabelSmoothingCrossEntropy
        from fastai.metrics import accuracy

        torch.manual_seed(self.seed)
        dev = _torch.device(self.device)
        self._start(y)
        x, t = self._inputs(X), torch.from_numpy(np.searchsorted(self.classes_, y)).long()
        self.check_options(np.shape(X))  # lr_find too, and models built in Python
        validating = X_valid is not None and y_valid is not None
        if X_valid is None or y_valid is None:  # fastai wants a validation set; a sliver of train will do
            X_valid, y_valid = X[:256], y[:256]
        xv, tv = self._inputs(X_valid), torch.from_numpy(np.searchsorted(self.classes_, y_valid)).long()
        # whole batches only (a ragged last one upsets batch norm); fewer rows than `bs` make one smaller batch, not
        # none (no batch at all trained nothing, and fastai's loss came out NaN)
        dls = DataLoaders(_torch.loader(x, t, bs=min(self.bs, len(x)), shuffle=True, seed=self.seed),
                          _torch.loader(xv, tv, bs=512, shuffle=False, seed=self.seed), device=dev)
        aug_gen = torch.Generator().manual_seed(self.seed + 1)
        watch = Watch(dev, on_epoch, validating,
                      augment=lambda xb: augment(xb, aug_gen, self.rotate, self.zoom, self.shift, elastic=self.elastic),
                      augment_gen=aug_gen)
        use_bf16, n_threads = self._use_bf16(dev), _torch.count(self.threads)
        self.compute_ = compute_note(dev, use_bf16, n_threads)
        net = Autocast(digit_resnet(self.width, len(self.classes_), self.full_res, x.shape[1], self.pool), use_bf16)
        net = net.to(dev).to(memory_format=torch.channels_last)
        learn = Learner(dls, net, loss_func=LabelSmoothingCrossEntropy(eps=self.label_smoothing),
                        metrics=accuracy, wd=self.weight_decay, cbs=[watch, *tracking.fastai_callbacks()])
        self.history_ = watch.history
        return learn, watch, n_threads

    def _use_bf16(self, dev: torch.device) -> bool:
        return self.precision == "bf16" or (self.precision == "auto" and bf16_ok(dev))

    def plan(self) -> str:
        """How training will run here: precision, memory layout and threads (the CPU decides under `auto`)."""
        dev = _torch.device(self.device)
        return compute_note(dev, self._use_bf16(dev), _torch.count(self.threads))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of the network's outputs, in batches."""
        self._check_fitted()
        if self.net_ is None:
            raise UsageError("this cnn model has no network loaded")
        x = self._inputs(X)
        dev = next(self.net_.parameters()).device
        out = []
        with torch.no_grad(), _torch.threads(self.threads):
            for start in range(0, len(x), 1024):
                out.append(torch.softmax(self.net_(x[start : start + 1024].to(dev)), 1).cpu())
        return torch.cat(out).numpy()

    def save(self, folder: Path) -> None:
        """The network's state_dict plus the classes."""
        self._check_fitted()
        state = dict(self.net_.state_dict())
        _torch.save_state(state | {"classes": torch.from_numpy(self.classes_)}, folder)

    def load(self, folder: Path) -> CNNModel:
        """Rebuild the network the saved weights fit (width, 28×28 block, input channels) and load them."""
        state = _torch.load_state(folder)
        self.classes_ = state.pop("classes").numpy()
        # the weights say which network they fit, whatever the options: runs saved before the default became
        # width 16 without the 28×28 block did not record width=32 or full_res=true
        full_res = "net.9.weight" in state
        use_bf16 = self._use_bf16(torch.device("cpu"))
        width, channels = state["net.0.0.weight"].shape[:2]  # the first convolution: (width, 1 grey or 3 RGB, 3, 3)
        head = state[f"net.{9 if full_res else 8}.weight"]  # the linear head: (classes, pooled)
        pool = "avg" if head.shape[1] == 4 * width else "concat"  # runs saved before 2026-12-02 pooled the mean
        self.width, self.full_res, self.pool = int(width), full_res, pool  # what the run has, whatever was asked
        self.net_ = Autocast(digit_resnet(self.width, len(self.classes_), full_res, int(channels), pool), use_bf16)
        self.net_.load_state_dict(state)
        self.net_.to(memory_format=torch.channels_last)  # as it trained: the same kernels, the same outputs
        self.net_.eval()
        self.fitted_ = True
        return self
