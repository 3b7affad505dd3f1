"""The runs table, declared once: the columns and cells that `kc runs` prints and `kc report` renders."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.competitions import Competition
from pipeline.training.records import Damaged, Run


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
    own = m.metric == comp.metric  # a run scored by another metric (the description changed) sorts last
    where = "OOF" if m.scored_on == "oof" else "split"
    options = " ".join(f"{k}={v}" for k, v in run.config.params.items() if k not in ("seed", "device"))
    return [Cell(run.run_id), Cell(run.model),
            Cell(metric.format(run.score) if own else f"{run.score:.4f} ({m.metric})", run.score if own else ""),
            Cell(f"{where}, {m.valid_rows:,} rows", f"{where} {m.valid_rows:09d}"),
            Cell(f"± {metric.format(m.fold_std)}" if m.fold_scores else "-", m.fold_std if m.fold_scores else ""),
            Cell(m.submits_with), Cell(f"{m.fit_seconds:.1f}", m.fit_seconds), Cell(options)]


def damaged_cells(comp: Competition, damaged: Damaged) -> list[Cell]:
    """A damaged run's row: its id, DAMAGED, and why in the last column."""
    blank = [Cell("-", "" if c.numeric else None) for c in columns(comp)[2:-1]]
    return [Cell(damaged.run_id), Cell("DAMAGED"), *blank, Cell(damaged.reason)]
