"""What the boosted-tree models (lgbm, catboost) share: early-stopping options, the inner split, the round clock."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.core import threads as cores
from pipeline.core.dataset import rows_except
from pipeline.core.errors import DataError, UsageError
from pipeline.models.base import EpochCallback, Model, saved_file

# boosters a fit with a time limit may average when the limit leaves room (each with its own seed, inner split and
# row and feature draws): more members when the budget is long, fewer rounds when it is short
MAX_BAGS = 5
MOST_BAGS = 100  # boosters -p bags=N may ask for
BAG = "bag"  # each booster after the first is saved in bag1/, bag2/, ...
BAGS = "bags.json"  # how many boosters a saved fit averages, when more than one
# rows from which a fit ends by rebuilding its last booster from its trees: its training state (about 50 MB at
# 900,000 rows) then outweighs the rebuild, whose seconds grow with the trees (80,000 trees of a small table grown
# to a 20 s time limit took 7 s to rebuild)
COMPACT_ROWS = 100_000


@dataclasses.dataclass
class Boosted(Model):
    """A boosted-tree model that stops early on an inner split of the rows it fits and keeps to a time limit."""

    tasks: ClassVar[tuple[str, ...]] = ("binary", "multiclass", "regression")
    scaled: ClassVar[bool] = False  # trees read raw features
    patience: int = 100  # stop after this many rounds without gain on the inner split; 0 = no inner split
    inner_pct: float = 0.1  # share of the fitted rows held out for early stopping
    refit: bool = True  # after early stopping, fit again on every row for the chosen rounds (Otto: 0.4716 -> 0.4642)
    # ... on fewer rows than this: on more, the held-out tenth adds little and the refit doubles the time (flights,
    # 245,502 rows: 91.36 % with the refit, 91.33 % without, in half the time; benchmarks/RESULTS.md, "Big tables")
    refit_rows: int = 200_000
    threads: int = 0  # 0 = the idle cores (core.threads.resolve); kc's trainer fills in the run's --threads
    time_limit: float = 0.0  # seconds one fit may take (0 = no limit); kc's trainer shares out --time-limit
    bags: int = 0  # boosters averaged (seeds seed, seed+1, ...); 0 = one, or with a time limit as many as it allows
    seed: int = 0

    bags_: list[Any] = dataclasses.field(default_factory=list, init=False, repr=False)  # the boosters after the first
    best_rounds_: int = dataclasses.field(default=0, init=False, repr=False)
    stopped_by_: str = dataclasses.field(default="", init=False, repr=False)  # "patience", "time" or "rounds"

    @property
    def thread_count(self) -> int:
        """The threads the library gets: `threads`, or for 0 what kc's other models take (the idle cores)."""
        return cores.resolve(self.threads)

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> Any:
        """Boost on X, y, early-stopping on an inner split of these rows (X_valid is never looked at); then bag."""
        if not 0 <= self.bags <= MOST_BAGS:
            raise UsageError(f"option bags={self.bags}: expected 0 (as time allows) or 1 to {MOST_BAGS} boosters")
        start = time.monotonic()
        deadline = start + self.time_limit if self.time_limit > 0 else None
        rows = self._rows(X, y)
        # what the boosters need is in `rows` now: a copy the caller handed over (kc's trainer hands one) is freed here
        # rather than held while they learn (54 MB of a million-row table)
        del X, X_valid
        self._fit(rows, y, deadline)
        self.bags_, began, slowest = [], start, 0.0
        wanted = self.bags or (MAX_BAGS if deadline is not None else 1)
        while len(self.bags_) + 1 < wanted and self.stopped_by_ != "time":
            now = time.monotonic()
            began, slowest = now, max(slowest, now - began)
            if deadline is not None and now + 1.2 * slowest > deadline:  # another would likely not finish in time
                break
            twin = dataclasses.replace(self, seed=self.seed + len(self.bags_) + 1, bags=1)
            (self.bags_[-1] if self.bags_ else self)._compact()  # one more follows: keep the trees alone
            twin._fit(rows, y, deadline)
            if twin.stopped_by_ == "time":  # cut short, it would pull the mean towards a weaker model
                break
            self.bags_.append(twin)
        if len(y) >= COMPACT_ROWS:
            (self.bags_[-1] if self.bags_ else self)._compact()  # the last booster's training state goes too
        return self

    def _refits(self, rows: int) -> bool:
        return self.refit and rows < self.refit_rows

    def _rows(self, X: np.ndarray, y: np.ndarray) -> Any:
        """What every booster of one fit learns from, made once: X itself unless a model prepares it."""
        return X

    def _fit(self, rows: Any, y: np.ndarray, deadline: float | None) -> None:
        raise NotImplementedError

    def _compact(self) -> None:
        """Let go of what only further training needs."""

    def _width(self) -> int:
        raise NotImplementedError

    def _boosters(self) -> list[Any]:
        self._check_fitted()
        return [self, *self.bags_]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, classes) float32 probabilities: the mean over the boosters."""
        return np.asarray(np.mean([b._proba(X) for b in self._boosters()], axis=0, dtype=np.float64), np.float32)

    def predict_values(self, X: np.ndarray) -> np.ndarray:
        """(n,) float64 predicted values: the mean over the boosters."""
        return np.asarray(np.mean([b._values(X) for b in self._boosters()], axis=0, dtype=np.float64))

    def _proba(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _values(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def save(self, folder: Path) -> None:
        """The first booster in `folder`, each further one in bag1/, bag2/, ..."""
        self._check_fitted()
        self._save(folder)
        for k, twin in enumerate(self.bags_, start=1):
            (folder / f"{BAG}{k}").mkdir()
            twin._save(folder / f"{BAG}{k}")
        if self.bags_:
            (folder / BAGS).write_text(json.dumps({"boosters": 1 + len(self.bags_)}))

    def load(self, folder: Path) -> Any:
        """Read what `save` wrote: the first booster, then bag1/, bag2/, ... as many as bags.json lists."""
        self._load(folder)
        self.bags_ = []
        count = boosters(folder)
        for k in range(1, count):
            if not (folder / f"{BAG}{k}").is_dir():
                raise DataError(f"{saved_file(folder, f'{BAG}{k}')} is missing ({BAGS} lists {count} boosters); "
                                "train it again")
            twin = dataclasses.replace(self, bags=1)
            twin._load(folder / f"{BAG}{k}")
            if twin.regression_ != self.regression_ or twin._width() != self._width() or not np.array_equal(
                    np.asarray(twin.classes_), np.asarray(self.classes_)):
                raise DataError(f"{saved_file(folder, f'{BAG}{k}')} does not match its first booster; train it again")
            self.bags_.append(twin)
        return self

    def _save(self, folder: Path) -> None:
        raise NotImplementedError

    def _load(self, folder: Path) -> None:
        raise NotImplementedError


def boosters(folder: Path) -> int:
    """How many boosters the fit saved in `folder` averages: its bags.json, or one without it."""
    try:
        count = json.loads((folder / BAGS).read_text())["boosters"] if (folder / BAGS).exists() else 1
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MOST_BAGS:
            raise ValueError(f"boosters={count!r}")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise DataError(f"{saved_file(folder, BAGS)} cannot be read ({exc}); train it again") from None
    return count


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
    return rows_except(n, held_rows), held_rows
