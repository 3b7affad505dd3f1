"""Several target columns: one model (or K fold models) per target on shared folds, scored by the column-wise metric.

A run of several targets keeps each target's models in `target<j>/` (laid out as a one-target run's folder) and one
valid.npz whose outputs are (rows, targets): probabilities of classes[1] for 0/1 targets, model values otherwise.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np

import pipeline
from pipeline.core.competitions import Competition
from pipeline.core.dataset import Dataset
from pipeline.core.errors import DataError
from pipeline.core.workspace import Workspace
from pipeline.models.base import EpochCallback, Model, for_inputs
from pipeline.training.honesty import most_folds
from pipeline.training.records import Run, RunMetrics, TrainConfig
from pipeline.training.scoring import predictions, score
from pipeline.training.splits import check_folds, fewer_folds, held_out, strata
from pipeline.training.trainer import Fitted, Stage, close_run, git_commit, open_run, refit, save_models, validate

MAX_PLOTS = 6  # targets drawn, one picture each (MoA-like competitions have hundreds)


def folder_name(j: int) -> str:
    """The folder of the j-th target's models inside a run."""
    return f"target{j}"


def shared_strata(comp: Competition, y: np.ndarray, k: int = 0) -> np.ndarray:
    """What the split every target shares stratifies on. 0/1 targets: each row's group is the rarest target whose
    rarer class it holds, or one group more for rows holding none. Values: the first target's quantile bins."""
    if comp.is_classification:
        holds = rarer_classes(y)[:, np.argsort(rarer_counts(y), kind="stable")]  # rarest target first
        return np.where(holds.any(axis=1), holds.argmax(axis=1), holds.shape[1]).astype(np.int64)
    return strata(comp.for_target(comp.targets[0]), y[:, 0], k=k)


def _scorable(view: Competition, y: np.ndarray) -> bool:
    """Whether the metric gives these rows of one 0/1 target a number (an AUC of rows of one class does not)."""
    return bool(np.isfinite(score(view, y, np.column_stack([1 - y, y]).astype(float))))


def rarer_classes(y: np.ndarray) -> np.ndarray:
    """(rows, targets) booleans: whether a row holds each 0/1 target's rarer class (1 when 1s are fewer)."""
    return y == (2 * y.sum(axis=0) < len(y)).astype(y.dtype)


def rarer_counts(y: np.ndarray) -> np.ndarray:
    """(targets,) the rows of each 0/1 target's rarer class."""
    return np.minimum(y.sum(axis=0), len(y) - y.sum(axis=0))


def shared_held_out(comp: Competition, cfg: TrainConfig, y: np.ndarray) -> list[np.ndarray]:
    """The rows each fit holds out, the same for every target: K folds each holding both classes of every 0/1 target
    (nested targets too, where grouping rows by one target each left a group of one row), or one split."""
    if not (cfg.folds and comp.is_classification):
        return held_out(comp, cfg, y, shared_strata(comp, y, cfg.folds or 0))
    check_folds(cfg.folds, len(y))
    counts = rarer_counts(y)
    if cfg.folds > counts.min():
        j = int(counts.argmin())
        raise fewer_folds(cfg.folds, int(counts.min()), f"{comp.targets[j]}'s rarer class")
    parts, lacking = dealt_folds(y, cfg.folds, cfg.seed)
    if parts is None:
        names = ", ".join(comp.targets[j] for j in lacking[:3]) + ("…" if len(lacking) > 3 else "")
        fix = "use fewer folds or another --seed" if cfg.folds > 2 else "--folds 0 scores a split instead"
        raise DataError(f"--folds {cfg.folds}: kc found no {cfg.folds} folds that each hold both classes of every "
                        f"target (a fold lacks a class of {names}, whose 1s share rows with other targets'); {fix}")
    return parts


@functools.lru_cache(maxsize=8)
def _dealt(key: bytes, shape: tuple[int, int], k: int, seed: int) -> tuple[tuple[np.ndarray, ...] | None, list[int]]:
    """(k folds, read-only, that each hold both classes of every 0/1 target packed in `key`, or None; the targets
    some fold still lacked a class of), kept for the next model of `kc compare`."""
    y = np.unpackbits(np.frombuffer(key, np.uint8), count=shape[0] * shape[1]).reshape(shape).astype(bool)
    labels = np.column_stack([y, ~y])  # both classes of every target
    rng = np.random.default_rng(seed)
    for _ in range(3):
        fold = deal(labels, k, rng)
        if repair(labels, fold, k, rng):
            parts = tuple(np.flatnonzero(fold == f) for f in range(k))
            for part in parts:
                part.flags.writeable = False  # shared by every caller
            return parts, []
    empty = (np.stack([labels[fold == f].sum(axis=0) for f in range(k)]) == 0).any(axis=0)
    return None, sorted({int(label) % shape[1] for label in np.flatnonzero(empty)})


def dealt_folds(y: np.ndarray, k: int, seed: int) -> tuple[list[np.ndarray] | None, list[int]]:
    """(k folds of the rows of (rows, targets) 0/1 `y` that each hold both classes of every target, or None when kc
    finds none; then the targets some fold lacked a class of)."""
    parts, lacking = _dealt(np.packbits(y.astype(bool)).tobytes(), y.shape, k, seed)
    return (None if parts is None else list(parts)), lacking


def repair(labels: np.ndarray, fold: np.ndarray, k: int, rng: np.random.Generator, steps: int = 500) -> bool:
    """Moves rows between folds (in place) until every fold holds every label, each move into a fold lacking one
    from a fold holding it twice or more, the row whose leaving empties the fewest labels first; whether it got
    there."""
    counts = np.stack([labels[fold == f].sum(axis=0) for f in range(k)])
    for _ in range(steps):
        holes = np.argwhere(counts == 0)
        if not len(holes):
            return True
        f, label = holes[rng.integers(len(holes))]
        rows = np.flatnonzero(labels[:, label] & (counts[fold, label] >= 2))
        if not len(rows):
            return False
        emptied = ((counts[fold[rows]] == 1) & labels[rows]).sum(axis=1)
        row = int(rng.choice(rows[emptied == emptied.min()]))
        counts[fold[row]] -= labels[row]
        counts[f] += labels[row]
        fold[row] = f
    return not (counts == 0).any()


def deal(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Each row's fold of `k`, so that every fold holds its share of each label's rows (iterative stratification,
    Sechidis et al. 2011): the rows of the label with the fewest rows left go first, each to the fold that lacks
    most of that label (then of the row's other labels, then rows); rows with no label then even out the fold
    sizes."""
    share = labels.sum(axis=0) / k
    want = np.tile(share, (k, 1))  # rows of each label each fold still lacks
    size = np.full(k, len(labels) / k)  # rows each fold still lacks
    fold = np.full(len(labels), -1, np.int64)
    left = labels.sum(axis=0)  # rows of each label not dealt yet
    while left.any():
        j = int(np.flatnonzero(left == left[left > 0].min())[0])
        for row in rng.permutation(np.flatnonzero(labels[:, j] & (fold < 0))):
            best = np.flatnonzero(np.isclose(want[:, j], want[:, j].max()))
            lack = (want[best][:, labels[row]] / share[labels[row]]).min(axis=1)  # of the row's other labels too
            best = best[np.isclose(lack, lack.max())]
            best = best[np.isclose(size[best], size[best].max())]
            f = int(rng.choice(best))
            fold[row] = f
            want[f] -= labels[row]
            size[f] -= 1
            left -= labels[row]
    rest = rng.permutation(np.flatnonzero(fold < 0))
    quota = np.maximum(np.round(size), 0).astype(np.int64)
    while quota.sum() != len(rest):  # rounding: take from or give to the folds furthest from their share
        over = quota.sum() > len(rest)
        f = int(np.argmax(np.where(quota > 0, quota - size, -np.inf))) if over else int(np.argmax(size - quota))
        quota[f] += -1 if over else 1
    fold[rest] = np.repeat(np.arange(k), quota)
    return fold


def column(comp: Competition, out: np.ndarray) -> np.ndarray:
    """One target's outputs as its column of the run's (rows, targets) outputs: the probability of classes[1], or
    the model values."""
    return out[:, 1] if comp.is_classification else out


def train_targets(comp: Competition, ws: Workspace, cfg: TrainConfig, X: np.ndarray, data: Dataset,
                  on_epoch: EpochCallback | None, stage: Stage, events: Path | None, deadline: float | None) -> Run:
    """Validate (and with --full refit) one model per target on the same folds; score and record them as one run."""
    y = data.y  # (n, targets)
    parts = shared_held_out(comp, cfg, y)
    if comp.is_classification and not cfg.folds and not any(_scorable(comp.for_target(name), y[parts[0], j])
                                                            for j, name in enumerate(comp.targets)):
        most = most_folds(comp, y)
        raise DataError(f"the held-out rows hold one class of every target: no {comp.scorer.title} to score them by; "
                        + (f"score every row out-of-fold with --folds {most}" if most else "add rows"))
    for_fit = partial(data.for_fit, X) if data.fit_columns is not None else None
    fits: list[tuple[Fitted, Model | None]] = []
    full_epochs = None
    for j, name in enumerate(comp.targets):
        view = comp.for_target(name)
        # each target gets an equal share of the time left
        share = None if deadline is None else time.monotonic() + (deadline - time.monotonic()) / (len(comp.targets) - j)
        what = f"{name} ({j + 1}/{len(comp.targets)}): "

        def staged(text: str, epochs: int | None, what: str = what) -> None:
            stage(what + text, epochs)

        folder = None if events is None else events / folder_name(j)
        fitted = validate(view, cfg, X, y[:, j], on_epoch, staged, folder, for_fit, share, parts)
        if fitted.models[0].interrupted_:  # Ctrl-C: the other targets would have no model
            raise KeyboardInterrupt
        full, epochs = refit(view, cfg, X, y[:, j], fitted, on_epoch, staged, folder, share)
        full_epochs = full_epochs or epochs
        fits.append((fitted, full))
    refits = cfg.full and all(full is not None for _, full in fits)
    if cfg.full and not refits:
        stage("a refit stopped: submissions use the validated models", None)
    index, fold = fits[0][0].valid_idx, fits[0][0].fold
    out = np.column_stack([column(comp, fitted.out) for fitted, _ in fits])  # (rows scored, targets)
    scored = y[index]
    fold_scores = [score(comp, scored[fold == k], out[fold == k]) for k in range(cfg.folds or 0)]
    first = fits[0][0].models[0]
    metrics = RunMetrics(
        metric=comp.metric, score=score(comp, scored, out), valid_rows=len(index),
        train_rows=len(y) - (len(index) if not cfg.folds else len(y) // cfg.folds),
        fit_seconds=round(sum(f.fit_seconds for f, _ in fits), 3),
        predict_seconds=round(sum(f.predict_seconds for f, _ in fits), 3),
        scored_on="oof" if cfg.folds else "split", history=first.history_, fold_scores=fold_scores,
        compute=first.compute_, full_epochs=full_epochs if refits else None,
        submits_with="full" if refits else ("fold-mean" if cfg.folds else "model"),
        data_fingerprint=data.fingerprint, learning_key=comp.learning_key, kc_version=pipeline.__version__,
        git_commit=git_commit(),
        created=datetime.now().isoformat(timespec="seconds"), most_folds=None if cfg.folds else most_folds(comp, y),
        target_scores={name: score(comp.for_target(name), scored[:, j], fits[j][0].out)
                       for j, name in enumerate(comp.targets)})
    cfg = dataclasses.replace(cfg, params=for_inputs(type(first), first.params(), comp.modality))
    models = [(fitted, full if refits else None) for fitted, full in fits]
    return _record(comp, ws, cfg, metrics, models, data, (index, out, fold), events)


def _record(comp: Competition, ws: Workspace, cfg: TrainConfig, metrics: RunMetrics,
            fits: list[tuple[Fitted, Model | None]], data: Dataset, valid: tuple[np.ndarray, np.ndarray, np.ndarray],
            events: Path | None) -> Run:
    """Write the run folder beside the others, all or nothing: each target's models in its own folder."""
    from pipeline.training import plots

    runs, tmp = open_run(comp, ws, cfg)
    try:
        for j, (fitted, full) in enumerate(fits):
            (tmp / folder_name(j)).mkdir()
            save_models(tmp / folder_name(j), metrics.submits_with, fitted, full, len(data.y))
        index, out, fold = valid
        np.savez(tmp / "valid.npz", index=index, outputs=out, fold=fold)
        how = "OOF" if metrics.scored_on == "oof" else "valid"
        title = f"{comp.slug} · {cfg.model} · {how} {comp.scorer.title} {comp.scorer.format(metrics.score)}"
        if metrics.history:
            plots.learning_curves([m.history_ for m in fits[0][0].models], tmp / "learning_curves.png", title)
        y, pred = data.y[index], predictions(comp, out)
        for j, name in enumerate(comp.targets[:MAX_PLOTS]):
            view = comp.for_target(name)
            title = (f"{comp.slug} · {name} · {cfg.model} · {how} {view.scorer.title} "
                     f"{view.scorer.format(metrics.target_scores[name])}")
            stem = f"{j + 1}-{re.sub(r'[^A-Za-z0-9_-]+', '_', name)[:40]}"
            if comp.is_classification:
                names = np.asarray(comp.display_classes)
                plots.confusion_matrix(names[y[:, j]], names[pred[:, j]], names, tmp / f"confusion_matrix-{stem}.png",
                                       title)
            else:
                plots.predicted_vs_true(y[:, j], pred[:, j], tmp / f"predicted_vs_true-{stem}.png", title,
                                        log=view.scorer.log_target)
        return close_run(runs, tmp, cfg, metrics, data, events)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def per_target(comp: Competition, run: Run) -> Iterator[tuple[Competition, Run]]:
    """Each target as a competition of its own, with the run as that target's one-target run (its folder)."""
    if list(run.metrics.target_scores) != list(comp.targets):
        raise DataError(f"run {run.run_id} learned the targets {', '.join(run.metrics.target_scores) or '(one)'}, "
                        f"not {comp.slug}'s {', '.join(comp.targets)}: train again with `kc train {comp.slug}`")
    for j, name in enumerate(comp.targets):
        yield comp.for_target(name), dataclasses.replace(run, folder=run.folder / folder_name(j))
