"""Ghost batch norm: each batch trains as shards with their own batch-norm statistics, side by side on threads."""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from fastai.learner import Learner
from torch import nn

T = TypeVar("T")
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class SeededDropout(nn.Dropout):
    """nn.Dropout that draws its masks from its own generator once `gen` is set: shards on threads sharing torch's
    global generator would draw in whichever order the threads ran, and no two fits would be alike."""

    gen: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Zero a `p` share of `x` (scaling the rest up) in training, nothing in eval."""
        if not self.training or self.p == 0 or self.gen is None:
            return super().forward(x)
        keep = torch.empty(x.shape, dtype=x.dtype, device=x.device).bernoulli_(1 - self.p, generator=self.gen)
        return x * keep / (1 - self.p)


def twin(net: nn.Module) -> nn.Module:
    """A copy of `net` that holds the very same parameters (so gradients of both add up in them) but its own
    buffers: batch norm's running statistics, which each shard updates from its own rows."""
    other = copy.deepcopy(net)
    for mine, theirs in zip(net.modules(), other.modules(), strict=True):
        for name, param in mine._parameters.items():
            theirs._parameters[name] = param
    return other


class Shards:
    """One network's batches cut into `k` shards of rows, each through its own replica (see `twin`: batch norm
    normalises within a shard, Hoffer et al.'s ghost batch norm), forward and backward side by side on `threads`.

    Summing the shards' losses weighted by their rows gives the gradient of the whole batch's mean loss, so only
    batch norm's statistics differ from one batch of them all. With fewer threads than shards they run one after
    another, with the same result: the recipe does not depend on the machine. Replica 0 is the network itself, and
    its buffers are the ones kept for prediction.
    """

    def __init__(self, net: nn.Module, k: int, threads: int, seed: int):
        self.replicas = [net, *(twin(net) for _ in range(k - 1))]
        for i, replica in enumerate(self.replicas):
            for module in replica.modules():
                if isinstance(module, SeededDropout):
                    module.gen = torch.Generator().manual_seed(seed * 7919 + i)
        self.k, self.seed = k, seed
        self.per_shard = max(1, threads // k)  # torch threads each shard runs on
        self.pool = ThreadPoolExecutor(k - 1, thread_name_prefix="kc-shard") if threads >= k > 1 else None

    def close(self) -> None:
        """Let the pool's threads go."""
        if self.pool is not None:
            self.pool.shutdown()

    def like(self, net: nn.Module) -> Shards:
        """The same cut for another network (a copy the time-limit probe steps)."""
        return Shards(net, self.k, self.per_shard * self.k if self.pool else 1, self.seed)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, loss_func: Loss) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward of every shard, gradients left in the parameters; (predictions, mean loss),
        detached."""
        parts = list(zip(x.tensor_split(min(self.k, len(x))), y.tensor_split(min(self.k, len(x))), strict=True))

        def one(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            xs, ys = parts[i]
            pred = self.replicas[i](xs)
            loss = loss_func(pred, ys) * (len(ys) / len(y))
            loss.backward()
            return pred.detach(), loss.detach()

        preds, losses = zip(*self._run(one, len(parts)), strict=True)
        return torch.cat(preds), torch.stack(losses).sum()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The network's outputs for `x` (no gradients), its rows cut across the threads; replica 0 serves all
        shards, since prediction reads the buffers and writes nothing."""
        parts = x.tensor_split(min(self.k, len(x)))

        def one(i: int) -> torch.Tensor:
            with torch.no_grad():  # grad mode is per thread
                return self.replicas[0](parts[i])

        return torch.cat(self._run(one, len(parts)))

    def _run(self, work: Callable[[int], T], n: int) -> list[T]:
        if self.pool is None:
            return [work(i) for i in range(n)]

        def in_pool(i: int) -> T:
            torch.set_num_threads(self.per_shard)  # a pool thread starts with OpenMP's default count
            return work(i)

        futures = [self.pool.submit(in_pool, i) for i in range(1, n)]
        first = work(0)  # shard 0 on this thread meanwhile
        return [first, *(f.result() for f in futures)]


class ShardedLearner(Learner):
    """fastai's Learner stepping each training batch through `Shards` (set `shards` before fitting); callbacks see
    the same events, with the predictions and loss of the whole batch."""

    shards: Shards

    def _do_one_batch(self) -> None:
        if not self.training:
            self.pred = self.shards.predict(*self.xb)
            self('after_pred')
            self.loss_grad = self.loss_func(self.pred, *self.yb)
            self.loss = self.loss_grad.clone()
            self('after_loss')
            return
        (x,), (y,) = self.xb, self.yb  # the CNN's batches: one tensor of images, one of labels
        self.pred, self.loss_grad = self.shards.train_step(x, y, self.loss_func)
        self.loss = self.loss_grad.clone()
        self('after_pred')
        self('after_loss')
        self._do_grad_opt()

    def _backward(self) -> None:
        """Nothing: each shard back-propagated its share in `_do_one_batch`."""
