"""kc's commands after training: submit, validate, ensemble, submissions, report, predict-image, demo."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipeline import api
from pipeline.cli.common import (
    Slug,
    WorkspaceOpt,
    app,
    handled,
    workspace_of,
)
from pipeline.cli.live import out, show_table, working
from pipeline.core import competitions
from pipeline.core.errors import UsageError
from pipeline.core.workspace import Workspace

Upload = Annotated[bool, typer.Option("--upload", help="send it to Kaggle")]


Message = Annotated[str | None, typer.Option("--message", "-m", help="upload description", metavar="TEXT")]


Wait = Annotated[bool, typer.Option(help="wait for Kaggle's score")]


Timeout = Annotated[float, typer.Option(min=0.0, help="seconds to wait for the score", metavar="SECONDS")]


@app.command()
@handled
def submit(
    ctx: typer.Context,
    slug: Slug = None,
    run: Annotated[str | None, typer.Option(help="run id (see `kc runs`)", metavar="RUN")] = None,
    best: Annotated[bool, typer.Option("--best", help="use the best run (the default)")] = False,
    upload: Upload = False,
    message: Message = None,
    wait: Wait = True,
    timeout: Timeout = 300.0,
    workspace: WorkspaceOpt = None,
) -> None:
    """Predict the test set with a run, write a validated submission, and optionally upload it."""
    if run and best:
        raise UsageError("give --run ID or --best, not both")
    ws = workspace_of(ctx, workspace)
    comp = api.competition(slug, ws)
    with working("predicting the test set"):
        result = api.submit(comp, run, workspace=ws)
    # shown before uploading: an upload that fails leaves the file written
    _show_submission(comp, result, api.run(comp, result.entry.run, ws).metrics.scored_on)
    if upload:
        _upload(comp, ws, result, message, wait, timeout)


def _upload(comp: competitions.Competition, ws: Workspace, result: api.Submission, message: str | None, wait: bool,
            timeout: float) -> None:
    with working("uploading to Kaggle") as bar:
        entry = api.upload(comp, result, message=message, wait=wait, timeout=timeout, workspace=ws,
                           on_wait=lambda text: bar.update(bar.task_ids[0], description=text))
    if entry.status == "COMPLETE":
        out.print(f"Kaggle scored it: public score {entry.public_score} (ref {entry.upload_ref})")
    else:
        out.print(f"uploaded (ref {entry.upload_ref}); not scored yet: see `kc submissions {comp.slug}` later")


def _show_submission(comp: competitions.Competition, result: api.Submission, scored_on: str,
                     made_by: str | None = None) -> None:
    """The file written and what made it ("lgbm run ID" unless `made_by` says otherwise), with its score and where
    it was scored (`scored_on`: "oof" out-of-fold, else on a validation split)."""
    e = result.entry
    scored = "out-of-fold" if scored_on == "oof" else "validation"
    score = f", {scored} {comp.scorer.title} {comp.scorer.format(e.valid_score)}" if e.valid_score is not None else ""
    what = "wrote" if result.new else "already written, unchanged:"
    out.print(f"{what} {result.path} (valid format; {made_by or f'{e.model} run {e.run}'}{score})")
    if e.sample:
        out.print("note: predicted from kc's bundled SAMPLE data, not Kaggle's full data: not for upload")


@app.command()
@handled
def validate(
    ctx: typer.Context,
    args: Annotated[list[str], typer.Argument(help="[SLUG] FILE: the submission CSV to check", metavar="[SLUG] FILE")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Check any CSV against the competition's submission format."""
    if len(args) > 2:
        raise UsageError("expected [SLUG] FILE")
    slug, file = (None, args[0]) if len(args) == 1 else args
    ws = workspace_of(ctx, workspace)
    comp = api.competition(slug, ws)
    rows = api.validate(file, slug=comp, workspace=ws)
    out.print(f"{file}: valid {comp.slug} submission ({rows:,} rows)")


@app.command()
@handled
def ensemble(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="competition slug", metavar="SLUG")],
    run_ids: Annotated[list[str], typer.Argument(help="two or more run ids", metavar="RUN...")],
    method: Annotated[str, typer.Option(help="weighted (weights chosen on the runs' shared validation rows), "
                                             "mean, or vote")] = "weighted",
    upload: Upload = False,
    message: Message = None,
    wait: Wait = True,
    timeout: Timeout = 300.0,
    workspace: WorkspaceOpt = None,
) -> None:
    """Blend runs into one submission, with weights chosen on the validation rows they share."""
    ws = workspace_of(ctx, workspace)
    comp = api.competition(slug, ws)
    with working("predicting the test set with each run"):
        blended = api.ensemble(comp, list(run_ids), method, workspace=ws)
    result, metric = blended.ensemble, comp.scorer
    if result.score is None:
        out.print("the runs were scored on different rows, so the ensemble has no validation score")
    else:
        where = "out-of-fold" if result.scored_on == "oof" else "on the shared validation split"
        table = Table("run", "weight", metric.title, title=f"ensemble, scored {where}")
        for run_id, member_score in result.members.items():
            table.add_row(run_id, f"{result.weights[run_id]:.2f}", metric.format(member_score))
        table.add_row(f"{method} ensemble", "", metric.format(result.score))  # not "blend": that is a model
        show_table(table)
    _show_submission(comp, blended.submission, result.scored_on,
                     made_by=f"{method} ensemble of runs {blended.submission.entry.blended}")
    if result.score is not None:
        best_id = min(result.members, key=lambda r: metric.sort_key(result.members[r]))
        if not metric.better(result.score, result.members[best_id]):
            command = f"kc submit {comp.slug} --run {shlex.quote(best_id)}"  # pasteable, whatever the folder's name
            out.print(f"the ensemble is no better than its best member: `{command}` writes that run's own file, the "
                      "one to prefer")
    if upload:
        _upload(comp, ws, blended.submission, message, wait, timeout)


@app.command()
@handled
def submissions(ctx: typer.Context, slug: Slug = None, workspace: WorkspaceOpt = None) -> None:
    """Show the submission log, refreshed from Kaggle when online."""
    ws = workspace_of(ctx, workspace)
    comp = api.competition(slug, ws)
    entries = api.submissions(comp, ws)
    if not entries:
        out.print(f"no submissions for {comp.slug} yet: try `kc submit {comp.slug}`")
    else:
        table = Table("file", "model", "valid score", "data", "status", "public score", "ref",
                      title=f"{comp.slug} submissions")
        for e in entries:
            valid = f"{e.metric} {e.valid_score:.4f}" if e.valid_score is not None else "-"
            model = f"{e.model} of {e.blended}" if e.runs else e.model  # an ensemble: which runs, what weights
            table.add_row(e.file, model, valid, "SAMPLE" if e.sample else "full", e.status, e.public_score or "-",
                          str(e.upload_ref or "-"))
        show_table(table)
    if entries.note:
        typer.echo(f"NOTE: {entries.note}", err=True)


@app.command()
@handled
def report(
    ctx: typer.Context,
    slug: Slug = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default: "
                                                                "competitions/SLUG/report.html)",
                                                  metavar="FILE")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write one self-contained HTML page: runs (sortable), their pictures, submissions, validation vs leaderboard."""
    path = api.report(slug, out=out_path, workspace=workspace_of(ctx, workspace)).resolve()
    out.print(f"wrote {path}")
    out.print(f"open it in a browser: {path.as_uri()}")


@app.command("predict-image")
@handled
def predict_image(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="PNG or JPEG photos of handwritten digits", metavar="IMAGE...")],
    run: Annotated[str | None, typer.Option(help="digit run id (default: the best)", metavar="RUN")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="PNG to write (or a folder for several)",
                                                  metavar="PATH")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Classify photos of your own handwritten digits, MNIST-style, and draw what the model saw."""
    for r in api.predict_images(list(paths), run, out_path, workspace_of(ctx, workspace)):
        guesses = ", ".join(f"{label} ({100 * p:.1f}%)" for label, p in r.top)
        out.print(f"{r.path}: {guesses}")
        out.print(f"  picture: {r.picture}")


@app.command()
@handled
def demo(ctx: typer.Context, workspace: WorkspaceOpt = None) -> None:
    """Offline, on the bundled data: fetch, convert, train linear/knn/cnn, write validated submissions."""
    import time

    from pipeline.cli.live import TrainDisplay
    from pipeline.demo import DemoWatch, run_demo

    t0 = time.perf_counter()
    display = TrainDisplay(None)
    with display.running():
        def say(text: str) -> None:  # a line that stays, and the live line's label until the next step
            display.ticker.say(text)
            display.status.new_fit(text)

        watch = DemoWatch(say=say, on_model=display.model, on_epoch=display.epoch, on_stage=display.stage)
        result = run_demo(workspace_of(ctx, workspace), watch)
    table = Table("competition", "model", "validation accuracy", "5-fold OOF", "time (s)",
                  title=f"kc demo: {time.perf_counter() - t0:.0f} s on the bundled data, {result.threads} "
                        f"thread{'s' if result.threads > 1 else ''}")
    for slug, model, score, cv, seconds in result.rows:
        table.add_row(slug, model, f"{100 * score:.2f}%", f"{100 * cv:.2f}%" if cv is not None else "-",
                      f"{seconds:.1f}")
    show_table(table)
    for note in result.notes:
        out.print(f"note: {note}")
    out.print("submissions (each checked against the competition's format):")
    for path, sample, rows in result.submissions:
        what = (f"{rows:,} rows from kc's bundled SAMPLE, not Kaggle's test set: practice only, not for upload"
                if sample else f"{rows:,} rows, the full test set: ready to upload with `kc submit --upload`")
        out.print(f"  {path}: {what}")
    out.print("pictures:")
    for path in result.pngs:
        out.print(f"  {path}")
