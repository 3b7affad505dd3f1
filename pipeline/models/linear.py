"""Logistic / softmax regression by gradient descent, written out the way the fast.ai lesson teaches it."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.models import _torch
from pipeline.models.base import EpochCallback, Model


@dataclasses.dataclass
class LinearModel(Model):
    """A linear model: sigmoid for two classes, softmax for more; mini-batch SGD with momentum and weight decay."""

    name: ClassVar[str] = "linear"
    epochs: int = 30
    lr: float = 0.01
    bs: int = 32
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 0

    weight_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)
    bias_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight_ + self.bias_

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 1:  # binary: one logit, the log-odds of class 1
            return F.binary_cross_entropy_with_logits(logits[:, 0], target.float())
        return F.cross_entropy(logits, target)

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> LinearModel:
        """Fit by mini-batch gradient descent; keep the weights of the best validation epoch."""
        gen = torch.Generator().manual_seed(self.seed)
        self.classes_ = np.unique(y)
        x = _torch.features(X)  # (n, d) float32
        target = torch.from_numpy(np.searchsorted(self.classes_, y)).long()
        outputs = 1 if len(self.classes_) == 2 else len(self.classes_)
        # parameters are plain tensors that record gradients; nothing from torch.optim
        self.weight_ = (torch.randn(x.shape[1], outputs, generator=gen) * 0.01).requires_grad_()
        self.bias_ = torch.zeros(outputs, requires_grad=True)
        params = [self.weight_, self.bias_]
        velocity = [torch.zeros_like(p) for p in params]
        xv = _torch.features(X_valid) if X_valid is not None else None
        tv = torch.from_numpy(np.searchsorted(self.classes_, y_valid)).long() if y_valid is not None else None
        best: tuple[float, list[torch.Tensor]] | None = None
        self.history_ = []
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
                record = {"epoch": epoch + 1, "train_loss": total / seen}
                if xv is not None and tv is not None:
                    with torch.no_grad():
                        logits = self._logits(xv)
                        record["valid_loss"] = float(self._loss(logits, tv))
                        record["valid_accuracy"] = float((self._classify(logits) == tv).float().mean())
                    if best is None or record["valid_loss"] < best[0]:
                        best = (record["valid_loss"], [p.detach().clone() for p in params])
                self.history_.append(record)
                if on_epoch:
                    on_epoch(record)
        except KeyboardInterrupt:
            self.interrupted_ = True
        if best is not None:
            self.weight_, self.bias_ = (copy.deepcopy(t).requires_grad_(False) for t in best[1])
        self.weight_, self.bias_ = self.weight_.detach(), self.bias_.detach()
        return self

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

    def save(self, folder: Path) -> None:
        """Weights, bias and classes as tensors."""
        self._check_fitted()
        _torch.save_state({"weight": self.weight_, "bias": self.bias_,
                           "classes": torch.from_numpy(self.classes_)}, folder)

    def load(self, folder: Path) -> LinearModel:
        """Restore what `save` wrote."""
        state = _torch.load_state(folder)
        self.weight_, self.bias_, self.classes_ = state["weight"], state["bias"], state["classes"].numpy()
        return self
