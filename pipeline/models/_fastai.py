"""What both fastai models (cnn, tabular) train with: one Callback (batches, progress, epochs, pruning, Ctrl-C, a
deadline) and a one-cycle fit that keeps to a time limit."""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from fastai.callback.core import Callback, CancelFitException

from pipeline.core import epochs, progress
from pipeline.core.epochs import Epoch
from pipeline.core.errors import UsageError
from pipeline.models._torch import CtrlC
from pipeline.models.base import EpochCallback

PROBE_STEPS = 8  # training steps timed one by one (after one that warms up); their median paces an epoch
# an epoch's seconds over its batches' median step (augmentation, forward, backward, the fit's optimiser) and its
# validation batches: a margin, since a cut costs the schedule's last epochs
EPOCH_OVERHEAD = 1.1
# seconds fastai's loop adds to each batch beyond the step (callbacks, batching), and to each epoch (its start and
# end, the best weights kept): tabular on 20,000 rows (312 batches of 64) took 2.2 s an epoch against 1.6 s of timed
# steps, on 712 rows 84 ms against 55 ms (Zen 1 EPYC); small beside a CNN's 0.12 s steps (batches of 64)
BATCH_OVERHEAD, EPOCH_FIXED = 0.002, 0.03


class Watch(Callback):
    """Watches one fastai fit for kc.

    - Before each batch: moves it to `device`; training batches go through `augment` when given (the CNN's).
    - After each training batch: reports progress ("batch", i, n).
    - After each epoch: records an `Epoch` in `history` (validation figures only when `validating`: a refit on all
      rows validates on a sliver of its own training rows, which says nothing), keeps a copy of the weights when it
      is the best so far (`epochs.improves`: the lowest validation loss), then hands it to `on_epoch`. There `kc tune`'s
      pruner may raise optuna.TrialPruned, which ends the fit and leaves the model unfinished (the trial is pruned).
    - Ctrl-C, inside `ctrl_c_stops()`: stops the fit at the end of the batch (CancelFitException) and sets
      `interrupted`. What it keeps, for every fastai model: the weights of the best epoch so far when validation rows
      were watched, else (a refit, or before the first epoch ends) the weights as they are. A second Ctrl-C stops
      at once. A KeyboardInterrupt raised by `on_epoch` or a progress listener counts as Ctrl-C too.
    - A `deadline` (time.monotonic seconds, set by `one_cycle` under a time limit) passed at the end of a training
      batch stops the fit the same way, keeping the same weights, and sets `out_of_time`.

    Its order, 90, puts it after fastai's Recorder (50) and TensorBoardCallback (51): the epoch's figures are there.
    """

    order = 90

    def __init__(self, device: torch.device, on_epoch: EpochCallback | None = None, validating: bool = True,
                 rmse_scale: float | None = None,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 augment_gen: torch.Generator | None = None):
        super().__init__()
        # rmse_scale: the target's std for a regression on a standardised target (valid_rmse on the target's scale);
        # None: a classifier whose first fastai metric is accuracy; augment_gen: the generator `augment` draws from
        self.dev, self.on_epoch, self.validating = device, on_epoch, validating
        self.rmse_scale, self.augment, self.augment_gen = rmse_scale, augment, augment_gen
        self.history: list[Epoch] = []
        self.best: Epoch | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.interrupted = self.out_of_time = False
        self.deadline: float | None = None
        self.ctrl_c = CtrlC()

    def ctrl_c_stops(self) -> CtrlC:
        """A `with` block in which Ctrl-C (SIGINT) asks the fit to stop at the end of the batch instead of raising."""
        return self.ctrl_c

    def before_fit(self) -> None:
        """A fit starts: nothing recorded, nothing kept."""
        self.history.clear()
        self.best, self.best_state, self.interrupted, self.out_of_time = None, None, False, False

    def before_batch(self) -> None:
        """Move the batch to the device; augment training batches."""
        xb = tuple(b.to(self.dev) for b in self.xb)
        if self.training and self.augment is not None:
            xb = (*xb[:-1], self.augment(xb[-1]))  # the images are the last input (the tabular net's are two)
        self.learn.xb, self.learn.yb = xb, tuple(b.to(self.dev) for b in self.yb)

    def after_batch(self) -> None:
        """Report a training batch; stop here when Ctrl-C was pressed."""
        if self.training:
            self._hook(progress.report, "batch", self.iter + 1, self.n_iter)
        self._stop_if_asked(deadline=self.training)  # a finished epoch's validation is not cut

    def after_epoch(self) -> None:
        """Record the epoch, keep the best weights, hand the epoch on."""
        values = self.recorder.values[-1]  # [train_loss, valid_loss, *metrics], as fastai's table shows them
        record = Epoch(self.epoch + 1, float(values[0]))
        if self.validating:  # valid_loss is exact: fastai weighs batch losses by batch size
            valid_loss = float(values[1])
            if self.rmse_scale is not None:
                record = Epoch(record.epoch, record.train_loss, valid_loss,
                               valid_rmse=math.sqrt(valid_loss) * self.rmse_scale)
            else:
                record = Epoch(record.epoch, record.train_loss, valid_loss, valid_accuracy=float(values[2]))
        self.history.append(record)
        if epochs.improves(record, self.best):
            self.best, self.best_state = record, copy.deepcopy(self.learn.model.state_dict())
        if self.on_epoch is not None:
            self._hook(self.on_epoch, record)
        self._stop_if_asked()

    def after_cancel_fit(self) -> None:
        """Stopped by Ctrl-C or the deadline: go back to the best epoch's weights, when there is one."""
        if (self.interrupted or self.out_of_time) and self.best_state is not None:
            self.learn.model.load_state_dict(self.best_state)

    def _hook(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except KeyboardInterrupt:
            self.ctrl_c.pressed = True

    def _stop_if_asked(self, deadline: bool = False) -> None:
        if self.ctrl_c.pressed:
            self.interrupted = True
            raise CancelFitException
        if deadline and self.deadline is not None and time.monotonic() > self.deadline:
            self.out_of_time = True
            raise CancelFitException


def one_cycle(learn: Any, watch: Watch, n_epochs: int, lr: float, time_limit: float, started: float) -> None:
    """fastai's `fit_one_cycle` under kc's Watch: Ctrl-C keeps the best epoch; with `time_limit` (seconds from
    `started`, a time.monotonic reading; 0: none) it trains as many of `n_epochs` as the pace measured here says fit,
    tells progress listeners ("epochs", fitting, asked), and stops at the deadline whatever the estimate said (then
    `watch.out_of_time`, and ("stopped", epochs done, fitting) to listeners; a UsageError before one epoch ended)."""
    from fastai.callback.schedule import fit_one_cycle  # noqa: F401 (adds Learner.fit_one_cycle)

    with watch.ctrl_c_stops(), learn.no_bar(), learn.no_logging():
        if time_limit > 0:
            fitting = epochs_in_time(learn, watch, n_epochs, started + time_limit)
            if watch.ctrl_c.pressed:  # Ctrl-C while the pace was timed: nothing trained, nothing to keep
                raise KeyboardInterrupt
            progress.report("epochs", fitting, n_epochs)
            n_epochs = fitting
            watch.deadline = started + time_limit
        learn.fit_one_cycle(n_epochs, lr)
    if watch.out_of_time:
        if not watch.history:
            raise UsageError(f"--time-limit: the time ran out before the first of {n_epochs} epochs ended (the machine "
                             "slowed down after the pace was timed); give more seconds, or train without --time-limit")
        progress.report("stopped", len(watch.history), n_epochs)


def epochs_in_time(learn: Any, watch: Watch, n_epochs: int, deadline: float) -> int:
    """How many of `n_epochs` end before `deadline`, judged by timing a few training steps (augmentation, forward,
    backward, the fit's optimiser) and a validation batch on a copy of the network; the fit's weights and its CPU
    random draws (dropout, augmentation) stay as they were. At least one, or a UsageError."""
    train, valid = learn.dls.train, learn.dls.valid  # torch DataLoaders of `_torch.Batches`
    net = copy.deepcopy(learn.model).train()
    opt = learn.opt_func(list(net.parameters()), lr=1e-6)  # fastai's own: torch's AdamW imports 2 s of dynamo at first
    (*xb, yb), (*xv, _) = first_batch(train, watch.dev), first_batch(valid, watch.dev)
    gen = watch.augment_gen.get_state() if watch.augment_gen is not None else None

    def step() -> None:
        inputs = [*xb[:-1], watch.augment(xb[-1])] if watch.augment is not None else xb
        opt.zero_grad()
        learn.loss_func(net(*inputs), yb).backward()
        opt.step()

    with torch.random.fork_rng(devices=[]):  # dropout draws here must not move the fit's own
        per_step = 0.0  # no whole batch (a table of one row, batches of two): the fit trains no step
        if len(train):
            step()  # the first call allocates and picks kernels
            per_step = statistics.median(seconds(step) for _ in range(PROBE_STEPS))  # one busy moment moves a mean
        net.eval()
        with torch.no_grad():
            per_valid = seconds(lambda: net(*xv))
    if watch.augment_gen is not None and gen is not None:
        watch.augment_gen.set_state(gen)
    epoch = EPOCH_OVERHEAD * (EPOCH_FIXED + len(train) * (per_step + BATCH_OVERHEAD) + len(valid) * per_valid)
    left = deadline - time.monotonic()
    fitting = n_epochs if left >= n_epochs * epoch else int(left // epoch)  # (a huge limit: no int of infinity)
    if fitting < 1:
        raise UsageError(f"--time-limit: one epoch takes about {epoch:.1f} s here, and this fit has {max(left, 0):.1f} "
                         "s left; give more seconds, or train without --time-limit")
    return fitting


@dataclass(frozen=True)
class LrFound:
    """What fastai's learning-rate finder saw: the loss at each rate tried, and the rate it suggests."""

    suggested: float  # fastai's `valley`: the middle of the longest stretch where the loss falls
    lrs: tuple[float, ...]
    losses: tuple[float, ...]  # smoothed training loss at each rate


def find_lr(learn: Any) -> LrFound:
    """Run fastai's `lr_find` on a fresh Learner in a scratch folder (it saves and restores the weights there),
    without kc's Watch (its epochs are no epochs: validation is skipped)."""
    import tempfile
    from pathlib import Path

    from fastai.callback.schedule import lr_find, valley  # noqa: F401 (adds Learner.lr_find)

    for cb in [cb for cb in learn.cbs if isinstance(cb, Watch)]:
        learn.remove_cb(cb)
    with tempfile.TemporaryDirectory(prefix="kc-lr-find.") as tmp:
        learn.path, learn.model_dir = Path(tmp), "models"
        with learn.no_bar(), learn.no_logging():
            found = learn.lr_find(show_plot=False, suggest_funcs=(valley,))
    lrs, losses = (tuple(float(v) for v in values) for values in (learn.recorder.lrs, learn.recorder.losses))
    return LrFound(float(found.valley), lrs, losses)


def first_batch(loader: torch.utils.data.DataLoader, device: torch.device) -> list[torch.Tensor]:
    """The loader's first rows, as many as one of its batches holds (or as it has), on `device`."""
    rows = list(range(min(loader.batch_size or 1, len(loader.dataset))))  # type: ignore[arg-type]
    return [t.to(device) for t in loader.dataset.__getitems__(rows)]  # type: ignore[attr-defined]


def seconds(work: Callable[[], object]) -> float:
    """How long one call of `work` takes (time.monotonic)."""
    t0 = time.monotonic()
    work()
    return time.monotonic() - t0
