"""fastai's tabular model (an MLP with batch norm and dropout) over an encoded feature matrix, trained from scratch."""

from __future__ import annotations

import dataclasses
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

# fastai's modules decorate with torch.jit.script, which this torch deprecates loudly at import
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")


def layer_sizes(layers: str | tuple[int, ...] | list[int]) -> list[int]:
    """Hidden layer widths from "200,100" (or a sequence of ints)."""
    parts = [s for s in layers.split(",") if s.strip()] if isinstance(layers, str) else list(layers)
    try:
        sizes = [int(s) for s in parts]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise UsageError(f"layers={layers!r}: expected widths of hidden layers such as 200,100")
    return sizes


def tabular_net(n_in: int, n_out: int, layers: list[int], dropout: float) -> nn.Module:
    """fastai's TabularModel with no embeddings: batch-normed inputs, then Linear/ReLU/BatchNorm/Dropout blocks."""
    from fastai.tabular.model import TabularModel

    return TabularModel(emb_szs=[], n_cont=n_in, out_sz=n_out, layers=layers, ps=dropout)


def _no_cats(n: int) -> torch.Tensor:
    """(n, 0) int64: the categorical input of a TabularModel without embeddings."""
    return torch.zeros(n, 0, dtype=torch.long)


@dataclasses.dataclass
class TabularModel(Model):
    """fastai Learner, one-cycle schedule; cross-entropy for classes, MSE on a standardised target; clipped inputs."""

    name: ClassVar[str] = "tabular"
    tasks: ClassVar[tuple[str, ...]] = ("binary", "multiclass", "regression")
    fastai: ClassVar[bool] = True
    modalities: ClassVar[tuple[str, ...]] = ("tabular",)
    space: ClassVar[dict[str, str]] = {"epochs": "5:40", "lr": "1e-3:3e-2:log", "bs": "32|64|128",
                                       "layers": "100|200,100|400,200", "wd": "1e-4:0.1:log", "dropout": "0:0.5"}
    epochs: int = 20
    lr: float = 1e-2
    bs: int = 64
    layers: str = "200,100"
    wd: float = 0.01
    dropout: float = 0.1
    seed: int = 0
    device: str = "auto"
    time_limit: float = 0.0  # seconds one fit may take (0 = no limit): fewer epochs if short; kc shares --time-limit

    net_: nn.Module | None = dataclasses.field(default=None, init=False, repr=False)
    y_mean_: float = dataclasses.field(default=0.0, init=False, repr=False)
    y_std_: float = dataclasses.field(default=1.0, init=False, repr=False)
    # the range of the training inputs: rows to predict are clipped into it, since a network extrapolates wildly
    low_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)
    high_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)

    def _inputs(self, X: np.ndarray) -> torch.Tensor:
        if X.ndim != 2:
            raise UsageError("the tabular model takes an (n, features) table, not images")
        x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        return x if self.low_ is None else torch.clamp(x, self.low_, self.high_)

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        if self.regression_:
            return torch.from_numpy(((np.asarray(y, np.float64) - self.y_mean_) / self.y_std_).astype(np.float32))
        return torch.from_numpy(np.searchsorted(self.classes_, y)).long()

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out[:, 0], target) if self.regression_ else F.cross_entropy(out, target)

    @_torch.small_tables_on_one_thread
    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> TabularModel:
        """Train one cycle (fewer epochs when `time_limit` says so); report each epoch; Ctrl-C stops and keeps the
        best epoch so far (see `Watch`)."""
        started = time.monotonic()
        learn, watch = self._learner(X, y, X_valid, y_valid, on_epoch)
        one_cycle(learn, watch, self.epochs, self.lr, self.time_limit, started)
        self.interrupted_, self.out_of_time_ = watch.interrupted, watch.out_of_time
        self.net_ = learn.model.eval()
        return self

    @_torch.small_tables_on_one_thread
    def lr_find(self, X: np.ndarray, y: np.ndarray) -> LrFound:
        """fastai's learning-rate finder on these rows (the model is not trained by it)."""
        return find_lr(self._learner(X, y, None, None, None)[0])

    def _learner(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None, y_valid: np.ndarray | None,
                 on_epoch: EpochCallback | None) -> tuple[Any, Watch]:
        """(the fastai Learner, the callback watching it), ready to fit."""
        from fastai.callback.progress import ProgressCallback  # noqa: F401 (adds Learner.no_bar)
        from fastai.data.core import DataLoaders
        from fastai.learner import Learner
        from fastai.metrics import accuracy

        self._start(y)
        sizes = layer_sizes(self.layers)
        torch.manual_seed(self.seed)  # weights and dropout
        dev = _torch.device(self.device)
        if self.regression_:
            self.y_mean_, self.y_std_ = float(np.mean(y)), float(np.std(y)) or 1.0
        self.low_ = self.high_ = None
        x, t = self._inputs(X), self._targets(y)
        if len(x):  # a column with a NaN in it is left unclipped
            self.low_ = torch.nan_to_num(x.min(0).values, nan=-torch.inf)
            self.high_ = torch.nan_to_num(x.max(0).values, nan=torch.inf)
        validating = X_valid is not None and y_valid is not None
        # fastai wants a validation set; without one a sliver of train stands in, and nothing is picked by it
        xv, tv = (self._inputs(X_valid), self._targets(y_valid)) if validating else (x[:256], t[:256])
        bs = max(2, min(self.bs, len(x)))  # batch norm needs two rows; drop_last needs one full batch
        # batches are (x_cat, x_cont, y); the model has no embeddings, so x_cat is (n, 0)
        dls = DataLoaders(_torch.loader(_no_cats(len(x)), x, t, bs=bs, shuffle=True, seed=self.seed),
                          _torch.loader(_no_cats(len(xv)), xv, tv, bs=1024, shuffle=False, seed=self.seed))
        watch = Watch(dev, on_epoch, validating, rmse_scale=self.y_std_ if self.regression_ else None)
        n_out = 1 if self.regression_ else len(self.classes_)
        net = tabular_net(x.shape[1], n_out, sizes, self.dropout).to(dev)
        learn = Learner(dls, net, loss_func=self._loss, metrics=[] if self.regression_ else accuracy,
                        wd=self.wd, cbs=[watch, *tracking.fastai_callbacks()])
        self.history_ = watch.history
        return learn, watch

    def _forward(self, X: np.ndarray) -> torch.Tensor:
        """(n, outputs) network outputs on the CPU, in batches."""
        self._check_fitted()
        x = self._inputs(X)
        dev = next(self.net_.parameters()).device
        out = []
        with torch.no_grad():
            for start in range(0, len(x), 4096):
                part = x[start : start + 4096].to(dev)
                out.append(self.net_(_no_cats(len(part)).to(dev), part).cpu())
        return torch.cat(out) if out else torch.zeros(0, 1 if self.regression_ else len(self.classes_))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of the network's outputs."""
        return torch.softmax(self._forward(X), 1).numpy()

    def predict_values(self, X: np.ndarray) -> np.ndarray:
        """The network's output, back on the target's scale."""
        return self._forward(X)[:, 0].double().numpy() * self.y_std_ + self.y_mean_

    def save(self, folder: Path) -> None:
        """The network's state_dict, its input width, and the classes or the target's mean and std."""
        self._check_fitted()
        state = dict(self.net_.state_dict()) | {"n_in": torch.tensor(self.net_.n_cont)}
        if self.low_ is not None:
            state |= {"input_low": self.low_, "input_high": self.high_}
        if self.regression_:
            state["target"] = torch.tensor([self.y_mean_, self.y_std_], dtype=torch.float64)
        else:
            state["classes"] = torch.from_numpy(self.classes_)
        _torch.save_state(state, folder)

    def load(self, folder: Path) -> TabularModel:
        """Rebuild the network from the hyperparameters and load the weights."""
        state = _torch.load_state(folder)
        n_in = int(state.pop("n_in"))
        self.low_, self.high_ = state.pop("input_low", None), state.pop("input_high", None)  # older runs: none
        self.regression_ = "target" in state
        if self.regression_:
            self.classes_ = None
            self.y_mean_, self.y_std_ = (float(v) for v in state.pop("target"))
        else:
            self.classes_ = state.pop("classes").numpy()
        self.net_ = tabular_net(n_in, 1 if self.regression_ else len(self.classes_), layer_sizes(self.layers),
                                self.dropout)
        self.net_.load_state_dict(state)
        self.net_.eval()
        self.fitted_ = True
        return self
