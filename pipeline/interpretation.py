"""What a run learned (`kc explain`): permutation importance on the rows it held out, for tables; the most
confidently wrong images and the accuracy of each class, for pixels. Nothing is refitted: the run's own models
predict the rows they never saw."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import figures
from pipeline.core.competitions import Competition
from pipeline.core.errors import UsageError
from pipeline.core.workspace import Workspace
from pipeline.training.records import Run

MAX_ROWS = 10_000  # held-out rows scored for each permutation (a seeded sample beyond this)
TOP_LOSSES = 24  # images in the top-losses sheet


@dataclass(frozen=True)
class Explanation:
    """A run's importances (tables) or its per-class accuracy and top losses (images), and the PNG drawn."""

    run: Run
    baseline: float  # the metric on the held-out rows used, as the run's models predict them
    importance: dict[str, tuple[float, float]] = field(default_factory=dict)  # column -> (mean drop, std), most first
    class_accuracy: dict[str, float] = field(default_factory=dict)  # class -> share of its held-out images right
    class_counts: dict[str, int] = field(default_factory=dict)  # class -> its held-out images
    picture: Path | None = None

    def _repr_html_(self) -> str:
        import html

        from pipeline.notebook import pngs_html

        rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{m:.4f} ± {s:.4f}</td></tr>"
                       for c, (m, s) in list(self.importance.items())[:15])
        rows += "".join(f"<tr><td>{html.escape(c)}</td><td>{a:.2%}</td></tr>" for c, a in self.class_accuracy.items())
        png = "" if self.picture is None else pngs_html([self.picture])
        return f"<div><b>run {html.escape(self.run.run_id)}</b><table>{rows}</table>{png}</div>"


def explain(comp: Competition, ws: Workspace, run_id: str | None = None, repeats: int = 3,
            seed: int = 0) -> Explanation:
    """Permutation importance (tables) or top losses and per-class accuracy (pixels) of a run, on its held-out rows."""
    from pipeline.core.dataset import load_dataset
    from pipeline.submitting.ledger import check_same_data
    from pipeline.training.records import get_run, read_valid

    if not 1 <= repeats <= 20:
        raise UsageError(f"--repeats {repeats}: expected 1 to 20 shuffles per column")
    if comp.targets:
        raise UsageError(f"kc explain handles one target; {comp.slug} has {len(comp.targets)}")
    run = get_run(comp, ws, run_id)
    data = load_dataset(comp, ws, run.config.features)
    check_same_data(comp, run, data)  # held-out rows of other data would judge the run on rows it never had
    if run.metrics.submits_with == "full":
        raise UsageError(f"run {run.run_id} kept only its refit on all rows, which has no held-out rows to be "
                         "judged on: explain a run trained without --full")
    valid = read_valid(run, comp, len(data.y))
    if comp.modality != "tabular":
        return _images(comp, run, data.X, data.y, valid)
    return _permutation(comp, run, data, valid, repeats, seed)


def _permutation(comp: Competition, run: Run, data: Any, valid: dict[str, np.ndarray], repeats: int,
                 seed: int) -> Explanation:
    from pipeline.training.records import load_models, load_train_rows
    from pipeline.training.scoring import outputs, score

    models = load_models(comp, run)
    if len(models) != int(valid["fold"].max()) + 1:
        raise UsageError(f"run {run.run_id} did not keep a model for each of its folds; train it again")
    scaled = getattr(models[0], "scaled", True)
    X = data.train_inputs(scaled)
    train_rows = load_train_rows(run, len(data.y)) if data.fit_columns is not None else None
    rng = np.random.default_rng(seed)
    index, fold = valid["index"], valid["fold"]
    if len(index) > MAX_ROWS:
        keep = np.sort(rng.choice(len(index), MAX_ROWS, replace=False))
        index, fold = index[keep], fold[keep]
    # each fold's held-out rows, as that fold's model saw its inputs (Titanic's groups come from its train rows)
    blocks = [(X if train_rows is None else data.for_fit(X, train_rows[k]))[index[fold == k]]
              for k in range(len(models))]
    y = np.concatenate([data.y[index[fold == k]] for k in range(len(models))])

    def judged(inputs: list[np.ndarray]) -> float:
        return score(comp, y, np.concatenate([outputs(comp, m, b) for m, b in zip(models, inputs, strict=True)]))

    metric = comp.scorer
    baseline = judged(blocks)
    found = {}
    for column, cols in _groups(data, X.shape[1]).items():
        drops = []
        for _ in range(repeats):
            shuffled = []
            for b in blocks:
                b = b.copy()
                b[:, cols] = b[rng.permutation(len(b))][:, cols]  # the group's columns move together
                shuffled.append(b)
            worse = judged(shuffled)
            drops.append(baseline - worse if metric.higher_is_better else worse - baseline)
        found[column] = (float(np.mean(drops)), float(np.std(drops)))
    ranked = dict(sorted(found.items(), key=lambda kv: -kv[1][0]))
    picture = _draw_importance(ranked, run, metric, run.folder / "importance.png")
    return Explanation(run, baseline, importance=ranked, picture=picture)


def _groups(data: Any, width: int) -> dict[str, list[int]]:
    """Feature columns grouped by the table column they come from (one-hot parts together); else one each."""
    state = data.features.get("state")
    names = list(data.feature_names) or [f"x{j}" for j in range(width)]
    if isinstance(state, dict) and "encodings" in state:
        from pipeline.tables.encoder import TableEncoder

        encoder = TableEncoder.from_json(state)
        groups: dict[str, list[int]] = {}
        start = 0
        for e in encoder.encodings_ or []:
            n = len(e.names(True))
            groups[e.column] = list(range(start, start + n))
            start += n
        if start == width:
            return groups
    return {name: [j] for j, name in enumerate(names[:width])}


def _images(comp: Competition, run: Run, X: np.ndarray, y: np.ndarray, valid: dict[str, np.ndarray]) -> Explanation:
    from pipeline.pixels import images
    from pipeline.training.scoring import score

    index, proba = valid["index"], np.asarray(valid["outputs"], np.float64)
    truth = y[index]
    guess = proba.argmax(axis=1)
    accuracy = {comp.display_classes[k]: float((guess[truth == k] == k).mean())
                for k in range(len(comp.classes)) if (truth == k).any()}
    loss = -np.log(np.clip(proba[np.arange(len(index)), truth], 1e-12, 1))
    wrong = np.flatnonzero(guess != truth)
    worst = wrong[np.argsort(-loss[wrong])][:TOP_LOSSES]
    picture = None
    if len(worst):
        names = comp.display_classes
        captions = [f"true {names[truth[i]]}, said {names[guess[i]]} {proba[i, guess[i]]:.0%}" for i in worst]
        picture = images.contact_sheet(X[index[worst]], captions, run.folder / "top_losses.png", cols=6,
                                       ink=comp.modality == "pixels")  # digits are ink on paper; photos are not
    counts = {comp.display_classes[k]: int((truth == k).sum()) for k in range(len(comp.classes)) if (truth == k).any()}
    return Explanation(run, score(comp, truth, proba), class_accuracy=accuracy, class_counts=counts, picture=picture)


DRAWN = 40  # columns in the importance picture, most important first


def _draw_importance(ranked: dict[str, tuple[float, float]], run: Run, metric: Any, path: Path) -> Path:
    plt = figures.pyplot()
    shown = list(ranked.items())[:DRAWN]
    times = 100 if metric.percent else 1  # points of a percentage, as the CLI prints them
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.3 * len(shown)))
    ax.barh(range(len(shown)), [times * m for _, (m, _) in shown], xerr=[times * s for _, (_, s) in shown],
            color="tab:blue")
    ax.set_yticks(range(len(shown)), [c[:28] for c, _ in shown], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    worse = "points of " + metric.title if metric.percent else metric.title + (" lost" if metric.higher_is_better
                                                                               else " gained")
    ax.set(xlabel=f"{worse} when the column is shuffled (higher: the model leans on it more)",
           title=f"permutation importance, {run.model} (held-out rows)")
    fig.tight_layout()
    return figures.save(fig, path)
