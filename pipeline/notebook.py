"""kc in Jupyter: HTML views of runs, competitions, fetches and submissions, and a fastprogress bar while training."""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.core import progress
from pipeline.core.epochs import Epoch
from pipeline.core.metrics import get as metric_named


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where HTML and progress bars display), False in a terminal or a script."""
    import sys

    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None else None  # type: ignore[attr-defined]
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _how(run: Any) -> str:
    """`5-fold out-of-fold on 891 rows` or `a 89-row validation split`."""
    m = run.metrics
    if m.scored_on == "oof":
        return f"{len(m.fold_scores)}-fold out-of-fold on {m.valid_rows:,} rows"
    return f"a {m.valid_rows:,}-row validation split"


def _score(run: Any) -> str:
    metric = metric_named(run.metrics.metric)
    return f"{metric.title} {metric.format(run.score)}"


def pngs_html(paths: list[Any]) -> str:
    """PNG files inline, two to a row."""
    return "".join(f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" '
                   f'alt="{_e(p.name)}" style="max-width:48%;margin:2px">' for p in paths)


def run_html(run: Any) -> str:
    """A run: its score and how it was scored, its options, and its pictures inline."""
    from pipeline.training.honesty import few_rows_note

    state = " <b>(interrupted: half-trained)</b>" if run.metrics.interrupted else ""
    note = few_rows_note(run.metrics)
    pngs = pngs_html(run.plots)
    options = " ".join(f"{k}={v}" for k, v in run.config.params.items() if k not in ("seed", "device"))
    slug = run.folder.parent.parent.name  # competitions/<slug>/runs/<run>
    return (f"<div><b>{_e(slug)} {_e(run.model)}</b>{state}: {_e(_score(run))} on {_e(_how(run))}"
            f"; fit {run.metrics.fit_seconds:.1f} s<br><small>run <code>{_e(run.run_id)}</code>"
            f"{' · ' + _e(options) if options else ''}</small>"
            + (f"<br><small>⚠ {_e(note)}</small>" if note else "") + f"<div>{pngs}</div></div>")


def runs_html(runs: list[Any]) -> str:
    """A leaderboard of runs, best first."""
    if not runs:
        return "<p>no runs yet</p>"
    rows = [[r.run_id, r.model + (" (interrupted)" if r.metrics.interrupted else ""), _score(r), _how(r),
             f"{r.metrics.fit_seconds:.1f}"] for r in runs]
    return _table(["run", "model", "score", "scored on", "fit s"], rows)


def competition_html(comp: Any) -> str:
    """A competition's description: task, target, metric, default model."""
    inputs = f"pixels {comp.image_shape[0]}×{comp.image_shape[1]}" if comp.image_shape else "a table"
    return _table(["competition", "task", "target", "inputs", "metric", "default model"],
                  [[comp.slug, comp.task, ", ".join(comp.target_columns), inputs, comp.metric, comp.default_model]])


def fetch_html(result: Any) -> str:
    """Where a fetch put the files and from where (or that they were already there)."""
    what = "already fetched" if result.skipped else ", ".join(result.files)
    return (f"<div><b>{_e(result.competition.slug)}</b>: {_e(what)} in <code>{_e(result.folder)}</code> "
            f"(from {_e(result.origin)})</div>")


def submission_html(sub: Any) -> str:
    """A written submission, and Kaggle's answer when uploaded."""
    e = sub.uploaded or sub.entry
    fields = {k: v for k, v in vars(e).items() if v not in (None, "")} if hasattr(e, "__dict__") else {}
    return f"<div>submission <code>{_e(sub.path)}</code></div>" + _table(list(fields), [list(fields.values())])


def register() -> None:
    """Teach IPython to show kc's results as HTML (classes named, so nothing is imported before it is used)."""
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None:
        return
    html_formatter = ip.display_formatter.formatters["text/html"]
    for module, name, fn in (("pipeline.training.records", "Run", run_html),
                             ("pipeline.core.competitions", "Competition", competition_html),
                             ("pipeline.ingest.sources", "FetchResult", fetch_html)):
        html_formatter.for_type_by_name(module, name, fn)


@contextmanager
def progress_bar(epochs: int | None) -> Iterator[Any]:
    """A fastprogress bar over the batches of each fit, its comment the stage and the last epoch's figures."""
    from fastprogress.fastprogress import progress_bar as bar

    state: dict[str, Any] = {"bar": None, "stage": "", "figures": "", "epoch": 0, "start": time.perf_counter(),
                             "epochs": epochs}

    def comment() -> str:
        of = f"epoch {state['epoch'] + 1}/{state['epochs']} · " if state["epochs"] else ""
        return f"{state['figures'] + ' · ' if state['figures'] else ''}{of}{state['stage']}"

    def on_batch(what: str, done: int, total: int) -> None:
        if what == "epochs":  # a time limit chose how many epochs this fit trains
            state["epochs"] = done
        if what != "batch":
            return
        span = total * (state["epochs"] or 1)  # one bar over all the fit's epochs when their number is known
        if state["bar"] is None:
            started: Any = bar(range(span), leave=True)
            started.update(0)  # starts its clock
            state["bar"] = started
        state["bar"].comment = comment()
        state["bar"].update(min(span, (state["epoch"] if state["epochs"] else 0) * total + done))

    class Hooks:
        def stage(self, text: str) -> None:
            state["stage"], state["epoch"], state["bar"] = text, 0, None  # the next fit gets a bar of its own

        def epoch(self, record: Epoch) -> None:
            state["epoch"] = record.epoch
            state["figures"] = ", ".join(f"{k} {100 * v:.2f}%" if k.endswith("accuracy") else f"{k} {v:.4f}"
                                         for k, v in record.figures().items() if k.startswith("valid"))

    with progress.listening(on_batch):
        yield Hooks()
