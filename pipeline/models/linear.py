"""Logistic / softmax / least-squares regression by gradient descent, written out the way the fast.ai lesson does."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core import epochs, progress
from pipeline.core.epochs import Epoch
from pipeline.models import _torch
from pipeline.models.base import EpochCallback, Model


@dataclasses.dataclass
class LinearModel(Model):
    """A linear model: sigmoid for two classes, softmax for more, squared error for values.

    Mini-batch SGD with momentum and weight decay. Regression targets are standardised inside, so the
    weight decay acts like scikit-learn's `Ridge(alpha = n * weight_decay / 2)` on that scale.
    """

    name: ClassVar[str] = "linear"
    tasks: ClassVar[tuple[str, ...]] = ("binary", "multiclass", "regression")
    space: ClassVar[dict[str, str]] = {"epochs": "5:60", "lr": "1e-3:0.3:log", "bs": "16|32|64|128",
                                       "momentum": "0.5:0.99", "weight_decay": "1e-6:0.1:log"}
    epochs: int = 30
    lr: float = 0.01
    bs: int = 32
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 0

    weight_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)
    bias_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)
    y_mean_: float = dataclasses.field(default=0.0, init=False, repr=False)
    y_std_: float = dataclasses.field(default=1.0, init=False, repr=False)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight_ + self.bias_

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.regression_:  # squared error on the standardised target
            return F.mse_loss(out[:, 0], target)
        if out.shape[1] == 1:  # binary: one logit, the log-odds of class 1
            return F.binary_cross_entropy_with_logits(out[:, 0], target.float())
        return F.cross_entropy(out, target)

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        """Class positions as int64, or standardised values as float32."""
        if self.regression_:
            return torch.from_numpy(((np.asarray(y, np.float64) - self.y_mean_) / self.y_std_).astype(np.float32))
        return torch.from_numpy(np.searchsorted(self.classes_, y)).long()

    @_torch.small_tables_on_one_thread
    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> LinearModel:
        """Fit by mini-batch gradient descent for every epoch; Ctrl-C keeps the best validation epoch so far."""
        self._start(y)
        gen = torch.Generator().manual_seed(self.seed)
        if self.regression_:
            self.y_mean_, self.y_std_ = float(np.mean(y)), float(np.std(y)) or 1.0
        x = _torch.features(X)  # (n, d) float32
        target = self._targets(y)
        outputs = 1 if self.regression_ or len(self.classes_) == 2 else len(self.classes_)
        # parameters are plain tensors that record gradients; nothing from torch.optim
        self.weight_ = (torch.randn(x.shape[1], outputs, generator=gen) * 0.01).requires_grad_()
        self.bias_ = torch.zeros(outputs, requires_grad=True)
        params = [self.weight_, self.bias_]
        velocity = [torch.zeros_like(p) for p in params]
        watch = X_valid is not None and y_valid is not None
        xv, tv = (_torch.features(X_valid), self._targets(y_valid)) if watch else (None, None)
        best: list[torch.Tensor] | None = None  # the weights of the best epoch so far (see `epochs.improves`)
        best_epoch: Epoch | None = None
        self.history_ = []
        ctrl_c = _torch.CtrlC().start()
        try:
            for epoch in range(self.epochs):
                lr = self.lr * 0.5 * (1 + np.cos(np.pi * epoch / self.epochs))  # cosine decay per epoch
                order = torch.randperm(len(x), generator=gen)
                total, seen = 0.0, 0
                for start in range(0, len(x), self.bs):
                    idx = order[start : start + self.bs]
                    loss = self._loss(self._logits(x[idx]), target[idx])  # forward
                    loss.backward()  # backward
                    with torch.no_grad():
                        for p, v, decay in zip(params, velocity, (self.weight_decay, 0.0), strict=True):
                            v.mul_(self.momentum).add_(p.grad + decay * p)  # momentum, L2 on weights only
                            p.sub_(lr * v)  # update
                            p.grad.zero_()  # zero the gradients
                    total += loss.item() * len(idx)
                    seen += len(idx)
                    progress.report("batch", start // self.bs + 1, -(-len(x) // self.bs))
                    if ctrl_c.pressed:
                        raise KeyboardInterrupt
                record = Epoch(epoch + 1, total / seen, **(self._score(xv, tv) if watch else {}))
                self.history_.append(record)
                if epochs.improves(record, best_epoch):  # checked per epoch: a long run stays linear in its epochs
                    best_epoch, best = record, [p.detach().clone() for p in params]
                if on_epoch:
                    on_epoch(record)
                if ctrl_c.pressed:  # Ctrl-C while the epoch was reported
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            self.interrupted_ = True
        finally:
            ctrl_c.stop()
        if self.interrupted_ and best is not None:  # validation rows only watch a full run: they choose nothing
            self.weight_, self.bias_ = (copy.deepcopy(t).requires_grad_(False) for t in best)
        self.weight_, self.bias_ = self.weight_.detach(), self.bias_.detach()
        return self

    def _score(self, xv: torch.Tensor, tv: torch.Tensor) -> dict[str, float]:
        """Validation loss, and accuracy or RMSE on the target's own scale."""
        with torch.no_grad():
            out = self._logits(xv)
            scores = {"valid_loss": float(self._loss(out, tv))}
            if self.regression_:
                scores["valid_rmse"] = float(((out[:, 0] - tv) ** 2).mean().sqrt()) * self.y_std_
            else:
                scores["valid_accuracy"] = float((self._classify(out) == tv).float().mean())
        return scores

    @staticmethod
    def _classify(logits: torch.Tensor) -> torch.Tensor:
        return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities from the sigmoid or softmax of the logits."""
        self._check_fitted()
        with torch.no_grad():
            logits = self._logits(_torch.features(X))
            if logits.shape[1] == 1:
                p1 = torch.sigmoid(logits[:, 0])
                return torch.stack([1 - p1, p1], 1).numpy()
            return torch.softmax(logits, 1).numpy()

    def predict_values(self, X: np.ndarray) -> np.ndarray:
        """The fitted line, back on the target's scale."""
        self._check_fitted()
        with torch.no_grad():
            out = self._logits(_torch.features(X))[:, 0].double().numpy()
        return out * self.y_std_ + self.y_mean_

    def save(self, folder: Path) -> None:
        """Weights and bias as tensors, with the classes or the target's mean and std."""
        self._check_fitted()
        state = {"weight": self.weight_, "bias": self.bias_}
        if self.regression_:
            state["target"] = torch.tensor([self.y_mean_, self.y_std_], dtype=torch.float64)
        else:
            state["classes"] = torch.from_numpy(self.classes_)
        _torch.save_state(state, folder)

    def load(self, folder: Path) -> LinearModel:
        """Restore what `save` wrote."""
        state = _torch.load_state(folder)
        self.weight_, self.bias_ = state["weight"], state["bias"]
        self.regression_ = "target" in state
        if self.regression_:
            self.classes_ = None
            self.y_mean_, self.y_std_ = (float(v) for v in state["target"])
        else:
            self.classes_ = state["classes"].numpy()
        self.fitted_ = True
        return self
