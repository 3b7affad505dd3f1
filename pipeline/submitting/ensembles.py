"""`kc ensemble`: blend runs that share validation rows, with weights chosen on those rows by the metric."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.errors import UsageError
from pipeline.core.metrics import Metric
from pipeline.core.workspace import Workspace

METHODS = ("weighted", "mean", "vote")
ROUNDS = 50  # greedy selection steps: weights move in steps of at most 1/ROUNDS


@dataclass(frozen=True)
class Ensemble:
    """An ensemble's submission, its members' scores beside its own, and the weights it chose."""

    written: Any  # submit.Written
    score: float | None  # on the shared validation rows (out-of-fold when the runs share folds)
    members: dict[str, float]  # run id -> its own score on those rows
    weights: dict[str, float]  # run id -> weight (mean: equal; vote: one vote each)
    scored_on: str  # "oof", "split", or "" when the runs share no validation rows


def greedy_weights(outs: list[np.ndarray], score: Callable[[np.ndarray], float], metric: Metric,
                   rounds: int = ROUNDS) -> np.ndarray:
    """Caruana's ensemble selection: add (with replacement) whichever member most improves the blend's score."""
    counts = np.zeros(len(outs))
    total = np.zeros_like(outs[0], dtype=np.float64)
    best_score = None
    for _ in range(rounds):
        trials = [score((total + o) / (counts.sum() + 1)) for o in outs]
        pick = min(range(len(outs)), key=lambda i: metric.sort_key(trials[i]))
        if best_score is not None and not metric.better(trials[pick], best_score) and counts.sum() >= 1:
            break
        counts[pick] += 1
        total += outs[pick]
        best_score = trials[pick]
    return counts / counts.sum()


def _combine(outs: list[np.ndarray], weights: np.ndarray, method: str, classes: int) -> np.ndarray:
    mean = np.tensordot(weights, np.stack(outs), axes=1)
    if method != "vote":
        return mean
    votes = np.stack([np.argmax(o, 1) for o in outs])  # (runs, n)
    counts = np.stack([(votes == c).sum(0) for c in range(classes)], 1).astype(np.float64)  # (n, classes)
    return counts + mean * 1e-3  # ties go to the mean


def ensemble(comp: Competition, ws: Workspace, run_ids: list[str], method: str = "weighted") -> Ensemble:
    """Combine runs, scored on their shared validation rows; write the submission."""
    from pipeline.core.dataset import load_dataset
    from pipeline.submitting.ledger import check_same_data, write
    from pipeline.training import prepared
    from pipeline.training.records import get_run, read_valid
    from pipeline.training.scoring import score, submitted

    if method not in METHODS:
        raise UsageError(f"--method {method}: expected one of {', '.join(METHODS)}")
    if method == "vote" and (not comp.is_classification or comp.targets):
        what = "has several targets" if comp.targets else "is a regression"
        raise UsageError(f"--method vote: {comp.slug} {what}; use weighted or mean")
    if len(run_ids) < 2:
        raise UsageError("an ensemble needs at least two runs")
    if len(set(run_ids)) != len(run_ids):
        twice = next(r for r in run_ids if run_ids.count(r) > 1)
        raise UsageError(f"run {twice} is named twice; an ensemble needs different runs")
    runs = [get_run(comp, ws, r) for r in run_ids]
    y_all = load_dataset(comp, ws, runs[0].config.features).y
    saved = [read_valid(r, comp, len(y_all)) for r in runs]
    shared = all(np.array_equal(s["index"], saved[0]["index"]) and np.array_equal(s["fold"], saved[0]["fold"])
                 for s in saved)
    if method == "weighted" and not shared:
        raise UsageError("--method weighted needs runs scored on the same rows (same --folds/--valid-pct and "
                         "--seed); use --method mean")
    weights = np.full(len(runs), 1 / len(runs))
    members: dict[str, float] = {}
    blend_score, scored_on = None, ""
    if shared:
        y = y_all[saved[0]["index"]]
        outs = [s["outputs"].astype(np.float64) for s in saved]
        members = {r.run_id: score(comp, y, o) for r, o in zip(runs, outs, strict=True)}
        if method == "weighted":
            weights = greedy_weights(outs, partial(score, comp, y), comp.scorer)
        blend_score = score(comp, y, _combine(outs, weights, method, len(comp.classes)))
        scored_on = runs[0].metrics.scored_on
    test, data = [], None
    for r in runs:
        data = load_dataset(comp, ws, r.config.features)
        check_same_data(comp, r, data)
        test.append(prepared.outputs(comp, ws, r, data))
    assert data is not None
    name = f"ensemble-{method}-{int(np.count_nonzero(weights))}"  # the runs it blends: one given 0 is in no blend
    chosen = {run_id: round(float(w), 6) for run_id, w in zip(run_ids, weights, strict=True)}  # k / ROUNDS or 1 / n
    models = "+".join(r.model for r, w in zip(runs, weights, strict=True) if w > 0)  # a run given 0 is in no blend
    written = write(comp, ws, data.test_ids, submitted(comp, _combine(test, weights, method, len(comp.classes))),
                    name, models, blend_score, runs=chosen)
    return Ensemble(written, blend_score, members, chosen, scored_on)
