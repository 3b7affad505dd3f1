"""`kc lr-find`: fastai's learning-rate finder on the rows a default `kc train` would fit, with its plot."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core import figures
from pipeline.core.competitions import Competition
from pipeline.core.errors import UsageError
from pipeline.core.workspace import Workspace
from pipeline.training.records import TrainConfig
from pipeline.training.scoring import model_target
from pipeline.training.splits import split, strata
from pipeline.training.trainer import build_model

if TYPE_CHECKING:
    from pipeline.models._fastai import LrFound


@dataclass(frozen=True)
class LrFinding:
    """The rate fastai suggests for a model on a competition, the curve it read it from, and the plot."""

    model: str
    suggested: float
    rows: int
    picture: Path
    lrs: tuple[float, ...] = ()  # the rates tried, rising
    losses: tuple[float, ...] = ()  # the smoothed training loss at each


def find(comp: Competition, ws: Workspace, model: str, seed: int = 0, valid_pct: float = 0.1) -> LrFinding:
    """Run fastai's lr_find for `model` (cnn or tabular) on the training part of kc's usual split."""
    from pipeline.core import threads
    from pipeline.core.dataset import load_dataset

    if comp.targets:  # one model a target: which target's rate would it be?
        raise UsageError(f"kc lr-find handles one target; {comp.slug} has {len(comp.targets)}: kc train fits each "
                         "target with the model's default rate, or the one --lr gives")
    cfg = TrainConfig(model=model.lower(), seed=seed, valid_pct=valid_pct).check()
    cfg = dataclasses.replace(cfg, params=comp.options_for(cfg.model))
    learner = build_model(comp, cfg)
    if not hasattr(learner, "lr_find"):
        raise UsageError(f"kc lr-find runs fastai's learning-rate finder: use it with cnn or tabular, not {model}")
    data = load_dataset(comp, ws, None)
    X = data.train_inputs(learner.scaled)
    rows, _ = split(strata(comp, data.y), cfg.valid_pct, cfg.seed)
    with threads.limited(0):
        found = learner.lr_find(data.for_fit(X, rows)[rows], model_target(comp, data.y[rows]))
    picture = _draw(found, cfg.model, comp.slug, ws.cache_dir(comp.slug) / f"lr_find-{cfg.model}.png")
    return LrFinding(cfg.model, found.suggested, len(rows), picture, found.lrs, found.losses)


def _draw(found: LrFound, model: str, slug: str, path: Path) -> Path:
    lrs, losses, suggested = found.lrs, found.losses, found.suggested
    fig, ax = figures.pyplot().subplots(figsize=(7, 4))
    ax.plot(lrs[:-5], losses[:-5], color="tab:blue")  # as fastai's plot_lr_find: the last 5 only climb away
    ax.set_xscale("log")
    ax.axvline(suggested, color="tab:red", ls="--", lw=1, label=f"suggested {suggested:.1e} (fastai's valley)")
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss (smoothed)", title=f"{slug}: lr_find for {model}")
    ax.legend()
    fig.tight_layout()
    return figures.save(fig, path)
