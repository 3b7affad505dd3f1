"""`kc demo`: a newcomer's first minutes, offline, on the bundled data."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core import competitions, dataset
from pipeline.core.workspace import Workspace
from pipeline.ingest import sources
from pipeline.models import model_by_name
from pipeline.models.base import EpochCallback
from pipeline.pixels import arrays
from pipeline.submitting import ledger
from pipeline.training import records, trainer

# (competition, model, params): short settings so the whole demo fits in a few minutes on 2 cores; the CNN is
# narrow and brief: 98.0 % in 60 CPU s on a CPU without bfloat16, where 8 epochs at width 32 took 15-30 minutes
PLAN: tuple[tuple[str, str, dict], ...] = (
    ("titanic", "linear", {}),
    ("titanic", "knn", {"k": 15}),
    ("digit-recognizer", "linear", {}),
    ("digit-recognizer", "knn", {}),
    ("digit-recognizer", "cnn", {"epochs": 4, "width": 16, "full_res": False, "bs": 64, "lr": 6e-3}),
)


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block with torch and the BLAS/OpenMP pools on `n` threads (linear and kNN use BLAS too)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


@dataclass
class DemoResult:
    """What the demo did: one row per trained model, the PNGs drawn, the submissions written."""

    rows: list[tuple[str, str, float, float | None, float]] = field(default_factory=list)
    pngs: list[Path] = field(default_factory=list)
    submissions: list[tuple[Path, bool, int]] = field(default_factory=list)  # (file, from a SAMPLE?, rows)
    notes: list[str] = field(default_factory=list)
    threads: int = 1  # torch and BLAS threads every model of the demo trained on


@dataclass
class DemoWatch:
    """Who hears what the demo does: steps and finished models with their scores (`say`), a model starting with
    its epoch count (`on_model`), and the trainer's epochs and stages."""

    say: Callable[[str], None] = lambda _: None
    on_model: Callable[[str, int | None], None] = lambda _label, _epochs: None
    on_epoch: EpochCallback | None = None
    on_stage: Callable[[str, int | None], None] | None = None


def run_demo(ws: Workspace, watch: DemoWatch | None = None) -> DemoResult:
    """fetch -> convert -> train linear, knn, cnn -> validated submissions, for both competitions."""
    from pipeline.models import _torch

    result = DemoResult(threads=_torch.idle_cores())
    with threads(result.threads):
        for slug in ("titanic", "digit-recognizer"):
            _one(slug, ws, watch or DemoWatch(), result)
    return result


def _epochs(model: str, params: dict) -> int | None:
    """How many epochs the model trains for with these options (None: it fits in one go)."""
    defaults = {f.name: f.default for f in dataclasses.fields(model_by_name(model))}
    return int(params.get("epochs", defaults["epochs"])) if "epochs" in defaults else None


def _one(slug: str, ws: Workspace, watch: DemoWatch, result: DemoResult) -> None:
    """The demo for one competition, into `result`."""
    say = watch.say
    comp = competitions.get(slug)
    say(f"{slug}: fetch")
    fetched = sources.fetch(slug, ws, sources.bundled_zip(slug))
    if fetched.skipped and fetched.source != "bundled":
        result.notes.append(f"{slug}: used the copy already fetched from {fetched.origin}")
    say(f"{slug}: convert")
    dataset.convert(comp, ws)
    if comp.modality == "pixels":
        result.pngs.append(arrays.sheet(comp, ws, None, 32, 0))
    data = dataset.load_dataset(comp, ws)
    for plan_slug, model, params in PLAN:
        if plan_slug != slug:
            continue
        folds = 5 if comp.modality == "tabular" else 0
        watch.on_model(f"{slug} {model}", _epochs(model, params))
        t0 = time.perf_counter()
        # the threads the table's title names (left at 0, small tables would train on one, and torch's cap not apply)
        cfg = records.TrainConfig(model=model, params=dict(params), folds=folds, threads=result.threads)
        run = trainer.train(comp, ws, cfg, data=data, on_epoch=watch.on_epoch, on_stage=watch.on_stage)
        cv = run.score if run.metrics.scored_on == "oof" else None
        seconds = time.perf_counter() - t0
        result.rows.append((slug, model + (" (interrupted)" if run.metrics.interrupted else ""), run.score, cv,
                            seconds))
        how = f"out-of-fold on {folds} folds" if folds else f"on a {run.metrics.valid_rows:,}-row split"
        say(f"{slug} {model}: {comp.scorer.title} {comp.scorer.format(run.score)} {how} ({seconds:.0f} s)")
        result.pngs.extend(run.plots)
    say(f"{slug}: submit the best run")
    written = ledger.predict_run(comp, ws, None)
    rows = sum(1 for _ in written.path.open()) - 1
    result.submissions.append((written.path, written.entry.sample, rows))
