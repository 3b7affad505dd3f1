"""`kc demo`: a newcomer's first minutes, offline, on the bundled data."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core import competitions, dataset
from pipeline.core.workspace import Workspace
from pipeline.ingest import sources
from pipeline.pixels import arrays
from pipeline.submitting import ledger
from pipeline.training import trainer

# (competition, model, params): short settings so the whole demo fits in a few minutes on 2 cores; the CNN is
# narrow and brief: 98.0 % in 60 CPU s on a CPU without bfloat16, where 8 epochs at width 32 took 15-30 minutes
PLAN: tuple[tuple[str, str, dict], ...] = (
    ("titanic", "linear", {}),
    ("titanic", "knn", {"k": 15}),
    ("digit-recognizer", "linear", {}),
    ("digit-recognizer", "knn", {}),
    ("digit-recognizer", "cnn", {"epochs": 4, "width": 16, "full_res": False, "bs": 64, "lr": 6e-3}),
)


@dataclass
class DemoResult:
    """What the demo did: one row per trained model, the PNGs drawn, the submissions written."""

    rows: list[tuple[str, str, float, float | None, float]] = field(default_factory=list)
    pngs: list[Path] = field(default_factory=list)
    submissions: list[tuple[Path, bool, int]] = field(default_factory=list)  # (file, from a SAMPLE?, rows)
    notes: list[str] = field(default_factory=list)


def run_demo(ws: Workspace, say: Callable[[str], None] = lambda _: None) -> DemoResult:
    """fetch -> convert -> train linear, knn, cnn -> validated submissions, for both competitions."""
    result = DemoResult()
    for slug in ("titanic", "digit-recognizer"):
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
            say(f"{slug}: train {model}")
            t0 = time.perf_counter()
            cfg = trainer.TrainConfig(model=model, params=dict(params), folds=5 if comp.modality == "tabular" else 0)
            run = trainer.train(comp, ws, cfg, data=data)
            cv = run.score if run.metrics.scored_on == "oof" else None
            result.rows.append((slug, model, run.score, cv, time.perf_counter() - t0))
            result.pngs.extend(run.plots)
        say(f"{slug}: submit the best run")
        written = ledger.predict_run(comp, ws, None)
        rows = sum(1 for _ in written.path.open()) - 1
        result.submissions.append((written.path, written.entry.sample, rows))
    return result
