"""One epoch's figures, as a model reports them and a run records them, and the one rule for the best epoch."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

METRICS = ("valid_accuracy", "valid_rmse")  # the per-epoch validation metric: classes, or values


@dataclass(frozen=True)
class Epoch:
    """The figures of one finished epoch; the validation ones are None when no validation rows were watched."""

    epoch: int  # 1 for the first
    train_loss: float
    valid_loss: float | None = None
    valid_accuracy: float | None = None  # classification: a fraction, 0.981
    valid_rmse: float | None = None  # regression: on the target's own scale

    def figures(self) -> dict[str, float]:
        """The figures it holds by name, in order: train_loss, valid_loss, then the metric."""
        return {f.name: value for f in dataclasses.fields(self)[1:] if (value := getattr(self, f.name)) is not None}

    @property
    def metric(self) -> tuple[str, float] | None:
        """The validation metric as (name, value), such as ("valid_accuracy", 0.98); None when not validated."""
        return next(((k, v) for k in METRICS if (v := getattr(self, k)) is not None), None)

    def to_json(self) -> dict[str, float]:
        """As metrics.json holds it: {"epoch": 1, "train_loss": 0.5, ...}, without the figures it lacks."""
        return {"epoch": self.epoch, **self.figures()}

    @classmethod
    def from_json(cls, data: Any) -> Epoch:
        """An epoch read back from metrics.json (older kc wrote the same keys); ValueError when it is none."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or "epoch" not in data or "train_loss" not in data or set(data) - names:
            raise ValueError(f"not an epoch record: {str(data)[:60]}")
        values = {k: v for k, v in data.items() if v is not None}
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                   for v in values.values()):
            raise ValueError(f"not an epoch record: {str(data)[:60]}")
        return cls(int(values.pop("epoch")), **{k: float(v) for k, v in values.items()})


def improves(record: Epoch, best_so_far: Epoch | None) -> bool:
    """Whether `record` is the new best after `best_so_far`: validated, with a lower validation loss (ties keep the
    earlier epoch). The one rule: what Ctrl-C keeps, what a refit trains to, the star in the epoch table."""
    if record.valid_loss is None:
        return False
    return best_so_far is None or best_so_far.valid_loss is None or record.valid_loss < best_so_far.valid_loss


def best(history: Sequence[Epoch]) -> Epoch | None:
    """The epoch with the lowest validation loss (the first of equals); None when no epoch was validated."""
    found = None
    for record in history:
        if improves(record, found):
            found = record
    return found
