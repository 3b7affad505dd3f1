"""What the CLI shows while work runs (bars, epoch lines on stderr) and the tables it prints after (stdout)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from pipeline.cli.status import Status, Ticker, clock, headline
from pipeline.core import epochs, progress
from pipeline.core.epochs import Epoch

# no Rich markup: what kc prints holds the user's names (run folders, columns, class labels), where "[red]" is text
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
MAX_ROWS = 25  # an epoch table longer than this shows a sample of epochs, always with the best and the last
SLOW_EPOCH = 1.0  # seconds: epochs at least this slow also get a line of their own on stderr

WHAT = {"batch": "batches", "predict": "test rows predicted", "png": "PNGs written"}


def show_table(table: Table, drop: tuple[str, ...] = (), whole: tuple[str, ...] = (),
               elsewhere: str = "") -> list[str]:
    """Print a table on stdout without squeezing it into 80 columns when output is not a terminal. In a terminal too
    narrow for it, the `drop` columns are left out in turn until it fits (and a line says so and where they are
    shown: `elsewhere`); `whole` columns (a run id to copy) never wrap. Returns the columns left out."""
    console = out if out.is_terminal else Console(highlight=False, width=200, markup=False)
    for column in table.columns:
        column.no_wrap = column.no_wrap or column.header in whole
    left_out = []
    for name in drop:
        if console.measure(table, options=console.options.update_width(10_000)).maximum <= console.width:
            break
        table.columns.pop([column.header for column in table.columns].index(name))
        left_out.append(name)
    console.print(table)
    if left_out:
        console.print(f"left out at this width: {', '.join(left_out)}{elsewhere}")
    return left_out


def bytes_progress(label: str) -> Progress:
    """A byte-counting bar on stderr (terminals only)."""
    return Progress(TextColumn(label, markup=False), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err,
                    transient=True, disable=not err.is_terminal)


@contextmanager
def working(text: str) -> Iterator[Progress]:
    """A spinner with `text`, turned into a bar with ETA by `progress.report` calls from the work (terminals only)."""
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                   console=err, transient=True, disable=not err.is_terminal)
    task = bar.add_task(text, total=None, unit="")

    def listen(what: str, done: int, total: int) -> None:
        bar.update(task, completed=done, total=total, unit=WHAT.get(what, what))

    with bar, progress.listening(listen):
        yield bar


@dataclass
class EpochRow:
    """One epoch as the table shows it."""

    fit: str  # "" for a single fit, "fold 2/5", "refit"
    record: Epoch
    seconds: float


@dataclass
class TrainDisplay:
    """Live training progress (see `status.Ticker`): stage, epoch i/N, batches, ETA; a line per finished fit."""

    epochs: int | None
    metric_key: str = ""
    rows: list[EpochRow] = field(default_factory=list)
    fit: str = ""
    model_name: str = ""  # kc compare: the model whose folds these are, named on each fit's line
    status: Status = field(default_factory=Status)
    _last: float = field(default_factory=time.perf_counter)
    _told: bool = False

    def model(self, label: str, epochs: int | None) -> None:
        """A new model starts training (the demo trains several)."""
        self._finish()
        self.epochs, self.fit, self._told = epochs, "", False
        self.status.new_fit(label, epochs)
        self.status.epochs = epochs

    def stage(self, text: str, epochs: int | None = None) -> None:
        """A new stage ("fold 2/5: training cnn on 37,800 rows"): a new fit starts, for `epochs` (None: not epochal)."""
        self._finish()
        self.fit = text.split(":")[0] if text.startswith("fold ") else ("refit" if text.startswith("refit") else "")
        self.epochs = epochs
        self._last = time.perf_counter()
        self.status.new_fit(text, self.epochs)

    def _finish(self) -> None:
        """Say how the fit that just ended scored, when it had epochs."""
        if self.status.epoch and self.status.figures:
            what = " ".join(filter(None, (self.model_name, self.status.label.split(":")[0])))
            epochs = f"{self.status.epoch} epoch{'s' if self.status.epoch != 1 else ''}"
            self.ticker.say(f"{what}: {self.status.figures} after {epochs} "
                            f"({clock(time.perf_counter() - self.status.fit_start)})")
            self.status.epoch = 0

    def epoch(self, record: Epoch) -> None:
        """An epoch ended: keep its row, show it in the live line, and on its own line when epochs are slow."""
        now = time.perf_counter()
        row = EpochRow(self.fit, record, now - self._last)
        self._last = now
        self.rows.append(row)
        self.status.epoch = record.epoch
        self.status.figures = headline(record)
        if row.seconds >= SLOW_EPOCH:
            of = f"/{self.epochs}" if self.epochs else ""
            fit = " ".join(filter(None, (self.model_name, self.fit)))
            self.ticker.say(f"{fit + ' · ' if fit else ''}epoch {record.epoch}{of}: "
                            f"{epoch_figures(record)} ({row.seconds:.0f}s)")

    def batch(self, what: str, done: int, total: int) -> None:
        """A batch ended: move the line; once a fit's pace is known, say about how long it will take. ("epochs",
        fitting, asked): a time limit chose how many epochs this fit trains."""
        if what in ("epochs", "stopped") and self.epochs is not None:  # not a blend's member: its stage has no epochs
            label = self.status.label.split(":")[0]
            if what == "stopped":
                self.ticker.say(f"{label}: stopped at --time-limit after {done} of {total} epochs")
            else:
                if done < total:
                    self.ticker.say(f"{label}: {done} of {total} epochs fit in --time-limit")
                self.epochs = self.status.epochs = done
            return
        if what != "batch":
            return
        self.status.progress(done, total)
        elapsed = time.perf_counter() - self.status.fit_start
        if not self._told and elapsed > 5 and (left := self.status.eta()) is not None:
            self._told = True
            if left > 60:
                self.ticker.say(f"{self.status.label}: {self.epochs} epochs, about {clock(elapsed + left)} here")

    @contextmanager
    def running(self) -> Iterator[TrainDisplay]:
        """Show the live line on stderr (a plain line every ~10 s when not a terminal) while the block trains."""
        self.status.epochs = self.epochs
        with Ticker(err, self.status) as self.ticker, progress.listening(self.batch):
            yield self
            self._finish()


def epoch_figures(record: Epoch) -> str:
    """`train_loss 0.1234, valid_loss 0.1111, valid_accuracy 98.10%` from an epoch record."""
    parts = []
    for key, value in record.figures().items():
        parts.append(f"{key} {100 * value:.2f}%" if key.endswith("accuracy") else f"{key} {value:.4f}")
    return ", ".join(parts)


def epoch_table(rows: list[EpochRow], stopped: bool = False) -> Table | None:
    """fastai's end-of-training table (epoch, losses, metric, time) for the first fit; None when nothing was epochal.
    `stopped`: Ctrl-C or a time limit ended a fit, which keeps the starred epoch, not the last."""
    first = [r for r in rows if r.fit == rows[0].fit] if rows else []
    if not first:
        return None
    keys = list(first[0].record.figures())
    chosen = epochs.best([r.record for r in first])
    best = next((i for i, r in enumerate(first) if r.record is chosen), 0)
    keep = _sample(len(first), best)
    title = "epochs" + (f" ({first[0].fit})" if first[0].fit else "")
    if len(keep) < len(first):  # say why rows are missing: a long table would push the result off the screen
        title += f": {len(keep)} of {len(first)} shown (first, best, last and evenly between)"
    table = Table("epoch", *keys, "time", title=title)
    for i in keep:
        r = first[i]
        mark = " *" if r.record is chosen else ""
        figures = r.record.figures()
        cells = ["–" if k not in figures else f"{100 * figures[k]:.2f}%" if k.endswith("accuracy") else
                 f"{figures[k]:.4f}" for k in keys]  # a refit's epochs have no validation figures
        table.add_row(f"{r.record.epoch}{mark}", *cells, f"{int(r.seconds // 60):02d}:{int(r.seconds % 60):02d}")
    if chosen is not None:
        table.caption = "* best validation loss; " + ("stopped early, the model keeps it" if stopped
                                                      else "the model keeps the last epoch")
    return table


def _sample(n: int, best: int) -> list[int]:
    """Row indices to show: all of them, or an even sample that keeps the first, the best and the last."""
    if n <= MAX_ROWS:
        return list(range(n))
    step = n / (MAX_ROWS - 2)
    return sorted({0, best, n - 1, *(round(i * step) for i in range(MAX_ROWS - 2))} - {n})
