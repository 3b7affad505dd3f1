"""The runs table, declared once: the columns and cells that `kc runs` prints and `kc report` renders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError, KcError
from pipeline.training.records import Damaged, Run, same_description


@dataclass(frozen=True)
class Column:
    """One column: its key (the report sorts by it), its heading, and whether it holds numbers."""

    key: str
    label: str
    numeric: bool = False


@dataclass(frozen=True)
class Cell:
    """One cell: the text shown, and the value the report sorts by (None: sort by the text)."""

    text: str
    sort: object = None


def columns(comp: Competition) -> list[Column]:
    """The runs table's columns, the score headed by the competition's metric."""
    return [Column("run", "run"), Column("model", "model"), Column("score", comp.scorer.title, True),
            Column("scored", "scored on"), Column("spread", "spread", True), Column("submits", "submits with"),
            Column("fit", "fit s", True), Column("options", "options")]


def run_cells(comp: Competition, run: Run) -> list[Cell]:
    """One run's row, in the order of `columns`."""
    m, metric = run.metrics, comp.scorer
    own = same_description(comp, m)  # trained under another competition.json (another metric, say): sorts last
    where = "OOF" if m.scored_on == "oof" else "split"
    options = options_text(run, comp)
    other = m.metric if m.metric != comp.metric else "stale"
    return [Cell(run.run_id), Cell(model_text(run)),
            Cell(metric.format(run.score) if own else f"{run.score:.4f} ({other})", run.score if own else ""),
            Cell(f"{where}, {m.valid_rows:,} row{'s' * (m.valid_rows != 1)}", f"{where} {m.valid_rows:09d}"),
            Cell(f"± {metric.format(m.fold_std)}" if m.fold_scores else "-", m.fold_std if m.fold_scores else ""),
            Cell(m.submits_with), Cell(f"{m.fit_seconds:.1f}", m.fit_seconds), Cell(options)]


def damaged_cells(comp: Competition, damaged: Damaged) -> list[Cell]:
    """A damaged run's row: its id, DAMAGED, and why in the last column."""
    blank = [Cell("-", "" if c.numeric else None) for c in columns(comp)[2:-1]]
    return [Cell(damaged.run_id), Cell("DAMAGED"), *blank, Cell(damaged.reason)]


HIDDEN = ("seed", "device", "threads", "time_limit")  # options every run has, set by --seed, --device, ...


def model_text(run: Run) -> str:
    """The model's name, marked `(interrupted)` when Ctrl-C stopped its training, `(cut at time limit)` when a
    deadline did."""
    cut = " (cut at time limit)" if run.metrics.out_of_time else ""
    return run.model + (" (interrupted)" if run.metrics.interrupted else "") + cut


def options_text(run: Run, comp: Competition) -> str:
    """`key=value` pairs; a blend's members and weights as it used them, not the empty defaults it was given."""
    params = {k: v for k, v in _used(run, comp.task == "regression").items() if k not in HIDDEN}
    if run.model == "blend" and isinstance(params.get("weights"), tuple):
        params["weights"] = ",".join(_weight(w) for w in params["weights"])
    # bags=0 under a time limit: as many boosters as the time held, shown as counted in the saved fits
    used = sorted(set(_boosters(run))) if params.get("bags") == 0 and run.config.time_limit else []
    if used:
        params["bags"] = f"0 ({used[0]}{'' if len(used) == 1 else f'-{used[-1]}'} used)"
    return " ".join(f"{k}={v}" for k, v in params.items())


def _weight(w: float) -> str:
    """A blend weight to two places, '<0.01' for one that counts but rounds to nothing (0.00 means left out)."""
    return "<0.01" if 0 < w < 0.005 else f"{w:.2f}"


def _boosters(run: Run) -> list[int]:
    """How many boosters each saved fit of a boosted run averages; [] when the run is not boosted or a count is
    damaged (`kc submit` says which)."""
    from pipeline.models import _boosting, cat, lgbm

    state = {lgbm.LGBMModel.name: lgbm.STATE, cat.CatBoostModel.name: cat.STATE}.get(run.model)
    if state is None:
        return []
    fits = [p.parent for p in run.folder.rglob(state) if not p.parent.name.startswith(_boosting.BAG)]
    try:
        return [_boosting.boosters(fit) for fit in fits]
    except KcError:
        return []


def _used(run: Run, regression: bool) -> dict[str, Any]:
    """The run's options, a blend's members and weights resolved (from its saved members where they exist)."""
    params = dict(run.config.params)
    if run.model == "blend":
        from pipeline.models.blend import BlendModel

        saved: list[Path | None] = [*sorted(run.folder.rglob("blend.json"))] or [None]  # each fold's or target's
        blend = BlendModel(members=str(params.get("members", "")), weights=str(params.get("weights", "")))
        try:
            used = [blend.resolved(regression, path.parent if path else None) for path in saved]
        except DataError:  # a damaged blend.json (edited by hand): equal weights would be a guess
            return params | {"members": ",".join(blend._plan_names()), "weights": "unreadable"}
        except KcError:  # options that no longer make a blend: shown as given
            return params
        shares = sorted({tuple(float(w) for w in weights) for _, weights in used})
        params["members"] = ",".join(used[0][0])
        # a value blend judges its members in each fit: fits that left out different members show each choice
        params["weights"] = shares[0] if len(shares) == 1 else \
            "per fit " + "|".join(",".join(_weight(w) for w in share) for share in shares)
    return params


IGNORED = ("threads", "device")  # options that change how fast a run goes, not what it learns


def repeats(runs: list[Run], comp: Competition) -> dict[str, str]:
    """Runs that repeat an earlier one (same model, options, split or folds, seed, features and data): run id -> the
    earliest such run's id. Their scores are the same experiment twice, not two pieces of evidence."""
    first: dict[str, str] = {}
    found = {}
    for run in sorted(runs, key=lambda r: r.run_id):  # run ids start with their time
        c, m = run.config, run.metrics
        params = {k: v for k, v in sorted(_used(run, comp.task == "regression").items()) if k not in IGNORED}
        if c.model == "blend":  # default members carry options of their own: named ones are another blend
            params["members given"] = c.params.get("members", "")
        key = repr((c.model, params, c.valid_pct if not c.folds else None, c.folds, c.seed, c.full, c.features,
                    c.time_limit, m.data_fingerprint, m.learning_key or m.metric, m.interrupted))
        if key in first:
            found[run.run_id] = first[key]
        else:
            first[key] = run.run_id
    return found
