"""The one line kc shows while work runs: redrawn in place on a terminal, printed every ~10 s anywhere else."""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from pipeline.core.epochs import Epoch

HEARTBEAT = 10.0  # seconds between plain progress lines when stderr is not a terminal (KC_PROGRESS_EVERY overrides)


def clock(seconds: float) -> str:
    """`0:07`, `12:34` or `1:02:03`."""
    s = max(0, round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def headline(record: Epoch) -> str:
    """An epoch's figures for the live line, metric first: `valid_accuracy 98.10%, valid_loss 0.1111`."""
    figures = record.figures()
    keys = sorted((k for k in figures if k.startswith("valid")), key=lambda k: (k == "valid_loss", k))
    return ", ".join(f"{k} {100 * figures[k]:.2f}%" if k.endswith("accuracy") else f"{k} {figures[k]:.4f}"
                     for k in keys)


@dataclass
class Status:
    """What runs now: the fit's stage, epoch i/N, batches, the last epoch's metric; its ETA from the pace so far."""

    label: str = "starting"
    epochs: int | None = None
    epoch: int = 0  # epochs finished in this fit
    figures: str = ""  # the last epoch's metric and validation loss
    batch: int = 0
    batches: int = 0
    fit_start: float = field(default_factory=time.perf_counter)
    start: float = field(default_factory=time.perf_counter)
    paced: tuple[float, float] | None = None  # (when, share of the fit done) at its first batch: the pace starts there

    def new_fit(self, label: str, epochs: int | None = None) -> None:
        """A fit (or any stage) starts: its clock and counters restart."""
        self.label, self.epoch, self.figures, self.batch, self.batches = label, 0, "", 0, 0
        self.epochs = epochs if epochs is not None else self.epochs
        self.fit_start, self.paced = time.perf_counter(), None

    def progress(self, batch: int, batches: int, now: float | None = None) -> None:
        """A training batch ended; the first one of a fit starts the pace (not the setup before it: a time limit's
        probe, the data turned into tensors)."""
        self.batch, self.batches = batch, batches
        if self.paced is None:
            self.paced = (time.perf_counter() if now is None else now, self._done())

    def _done(self) -> float:
        """The share of this fit's epochs done."""
        return (self.epoch + (self.batch / self.batches if self.batches else 0.0)) / self.epochs if self.epochs else 0.0

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left in this fit and the folds after it, from the pace so far (None until there is a pace)."""
        if not self.epochs:
            return None
        now = time.perf_counter() if now is None else now
        done = self._done()
        since, done_then = self.paced or (self.fit_start, 0.0)
        if done <= done_then:
            return None
        fit_seconds = (now - since) / (done - done_then)  # a whole fit at this pace
        fold = re.match(r"fold (\d+)/(\d+)", self.label)
        later = (int(fold.group(2)) - int(fold.group(1))) * fit_seconds if fold else 0.0
        return fit_seconds * (1 - done) + later

    def line(self, width: int | None = None, now: float | None = None) -> str:
        """The line, metric first, cut to `width` characters by dropping the stage text first."""
        now = time.perf_counter() if now is None else now
        started = self.epoch or self.batches  # a stage without batches (loading, saving) shows no epoch
        epoch = f"epoch {min(self.epoch + 1, self.epochs)}/{self.epochs}" if self.epochs and started else ""
        batch = f"batch {self.batch}/{self.batches}" if self.batches else ""
        left = self.eta(now)
        timing = f"{clock(now - self.start)} elapsed" + (f", eta {clock(left)}" if left is not None else "")
        metric_only = self.figures.split(", ")[0]
        # the widest that fits: everything; without the stage text; the metric alone of the figures; cut
        for figures, label in ((self.figures, self.label), (self.figures, ""), (metric_only, "")):
            text = " · ".join(p for p in (figures, epoch, batch, timing, label) if p)
            if width is None or len(text) <= width:
                return text
        return text[: max(0, (width or 1) - 1)] + "…"


class Ticker:
    """Shows a Status on `console`: one live line on a terminal; otherwise a plain line every ~10 s."""

    def __init__(self, console: Console, status: Status, every: float | None = None):
        self.console, self.status = console, status
        self.every = every if every is not None else float(os.environ.get("KC_PROGRESS_EVERY", HEARTBEAT))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Live | None = None

    def say(self, text: str) -> None:
        """A line that stays (a finished stage and its score), above the live line on a terminal."""
        self.console.print(text, soft_wrap=True, highlight=False)

    def _render(self) -> Text:
        return Text(self.status.line(self.console.width - 1), no_wrap=True, overflow="ellipsis")

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self.say(self.status.line())

    def __enter__(self) -> Ticker:
        if self.console.is_terminal:
            self._live = Live(get_renderable=self._render, console=self.console, transient=True,
                              refresh_per_second=4)
            self._live.__enter__()
        else:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.__exit__(*exc)
        if self._thread is not None:
            self._thread.join()
