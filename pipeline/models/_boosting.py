"""What the boosted-tree models (lgbm, catboost) share: early-stopping options, the inner split, the round clock."""

from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

import numpy as np

from pipeline.core.errors import DataError
from pipeline.models.base import Model


@dataclasses.dataclass
class Boosted(Model):
    """A boosted-tree model that stops early on an inner split of the rows it fits and keeps to a time limit."""

    tasks: ClassVar[tuple[str, ...]] = ("binary", "multiclass", "regression")
    scaled: ClassVar[bool] = False  # trees read raw features
    patience: int = 100  # stop after this many rounds without gain on the inner split; 0 = no inner split
    inner_pct: float = 0.1  # share of the fitted rows held out for early stopping
    refit: bool = True  # after early stopping, fit again on every row for the chosen rounds (Otto: 0.4716 -> 0.4642)
    threads: int = 0  # 0 = every core; kc's trainer fills in the run's --threads
    time_limit: float = 0.0  # seconds one fit may take (0 = no limit); kc's trainer shares out --time-limit
    seed: int = 0


class RoundClock:
    """Whether one more boosting round would end past a deadline, judged by the rounds' own durations."""

    def __init__(self, deadline: float | None):
        self.deadline = deadline
        self._first: float | None = None  # when the first round ended
        self._last = 0.0  # when the previous round ended
        self._rounds = 0  # rounds ended since the first

    def next_overruns(self) -> bool:
        """Called as each round ends: True when the next one would end past the deadline."""
        if self.deadline is None:
            return False
        now = time.monotonic()
        if self._first is None:
            self._first = self._last = now
            return now >= self.deadline
        self._rounds += 1
        per_round = max((now - self._first) / self._rounds, now - self._last)
        self._last = now
        return now + per_round >= self.deadline


def inner_split(codes: np.ndarray | None, n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held rows): `share` of n held out, per class when class codes are given, reproducible from seed."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if codes is None else [np.flatnonzero(codes == c) for c in np.unique(codes)]
    held = []
    for rows in groups:
        take = min(len(rows) - 1, max(1, round(share * len(rows)))) if len(rows) > 1 else 0
        held.append(rng.permutation(rows)[:take])
    held_rows = np.sort(np.concatenate(held)).astype(np.int64)
    if not len(held_rows):
        raise DataError(f"a boosted model holds out {share:.0%} of its rows to stop early, and {n} rows leave none: "
                        "use -p patience=0")
    return np.setdiff1d(np.arange(n), held_rows), held_rows
