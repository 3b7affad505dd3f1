"""Every model that fits a competition, on the same folds, in one leaderboard (`kc compare`, like PyCaret's
`compare_models()`): each model is an ordinary run, so the best can be submitted or ensembled afterwards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError, KcError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.models import fitting
from pipeline.models.base import EpochCallback
from pipeline.training.honesty import most_folds
from pipeline.training.records import Run, TrainConfig
from pipeline.training.trainer import Stage, train

SLOW = ("cnn",)  # left out unless named: minutes to hours per fold on a laptop CPU


@dataclass(frozen=True)
class Entry:
    """One model's line in the comparison: its run, or why it could not be scored."""

    model: str
    run: Run | None = None
    error: str = ""


@dataclass(frozen=True)
class Comparison:
    """The models compared on the same folds, best first by the competition's metric; failures last."""

    competition: Competition
    folds: int
    seed: int
    entries: tuple[Entry, ...]
    left_out: tuple[str, ...] = ()  # models that fit but were not run (slow ones, unless named)

    def _repr_html_(self) -> str:
        import html

        metric = self.competition.scorer
        head = "".join(f"<th>{html.escape(h)}</th>" for h in HEAD)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows(self))
        return (f"<div><b>{html.escape(self.competition.slug)}</b>: {html.escape(metric.title)} out-of-fold on the "
                f"same {self.folds} folds (seed {self.seed})<table><thead><tr>{head}</tr></thead><tbody>{body}"
                "</tbody></table></div>")


def chosen_models(comp: Competition, models: list[str] | None) -> tuple[list[str], tuple[str, ...]]:
    """(models to run, models left out): the named ones (checked), else every fitting model but the slow ones."""
    fits = fitting(comp)
    if not models:
        return [m for m in fits if m not in SLOW], tuple(m for m in fits if m in SLOW)
    named = [m.strip().lower() for m in models if m.strip()]
    unknown = [m for m in named if m not in fits]
    if unknown:
        raise UsageError(f"--models: '{unknown[0]}' does not fit {comp.slug}; choose from {', '.join(fits)}")
    if len(set(named)) < len(named):
        raise UsageError("--models: a model is named twice")
    return named, ()


def compare(comp: Competition, ws: Workspace, models: list[str] | None = None, folds: int | None = None,
            seed: int = 0, threads: int = 0, on_model: Callable[[str, int, int], None] | None = None,
            on_epoch: EpochCallback | None = None, on_stage: Stage | None = None) -> Comparison:
    """Train each model out-of-fold on the same `folds` (same seed), one run each; a model that fails is reported,
    not fatal. `on_model(name, i, n)` is called as each starts; `folds` None: 5, or as many as the rarest class has
    rows when fewer."""
    from pipeline.core.dataset import load_dataset

    if folds is not None and not 2 <= folds <= 20:
        raise UsageError(f"--folds {folds}: a comparison scores every model out-of-fold; use 2 to 20")
    names, left_out = chosen_models(comp, models)
    if not names:
        raise UsageError("--models: name at least one model, e.g. --models knn,lgbm")
    data = load_dataset(comp, ws)  # read and encoded once, for every model
    if folds is None:
        folds = most_folds(comp, data.y)
        if folds < 2 and comp.targets and comp.is_classification:
            raise DataError("no model can be scored out-of-fold: kc finds no two folds that each hold both classes of "
                            "every target; compare models with kc train --folds 0 (a split) instead")
        if folds < 2:
            raise DataError("no model can be scored out-of-fold: a class with a single row is never both learnt and "
                            "scored; add rows")
    entries = []
    for i, name in enumerate(names):
        if on_model:
            on_model(name, i, len(names))
        cfg = TrainConfig(model=name, folds=folds, seed=seed, threads=threads)
        try:
            entries.append(Entry(name, train(comp, ws, cfg, on_epoch=on_epoch, on_stage=on_stage, data=data)))
        except KcError as exc:
            entries.append(Entry(name, error=str(exc)))
    if not any(e.run for e in entries):  # nothing to compare: the reason, once, as an error
        raise DataError(f"no model could be scored: {entries[0].error}")
    metric = comp.scorer
    scored = sorted(((e, e.run.score) for e in entries if e.run is not None), key=lambda es: metric.sort_key(es[1]))
    return Comparison(comp, folds, seed, tuple([e for e, _ in scored] + [e for e in entries if e.run is None]),
                      left_out)


def rows(result: Comparison) -> list[list[str]]:
    """The leaderboard as text cells: rank, model, score, spread over folds, fit seconds, run id (or the error)."""
    metric = result.competition.scorer
    out = []
    for rank, e in enumerate(result.entries, 1):
        if e.run is None:
            out.append(["-", e.model, "failed", "", "", e.error])
            continue
        m = e.run.metrics
        out.append([str(rank), e.model, metric.format(m.score), f"± {metric.format(m.fold_std)}",
                    f"{m.fit_seconds:.1f}", e.run.run_id])
    return out


HEAD = ("#", "model", "score", "spread", "fit s", "run")

