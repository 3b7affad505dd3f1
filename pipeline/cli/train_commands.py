"""kc's commands for training: train, compare, models, runs, tune."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline import api
from pipeline.cli.common import (
    Device,
    ModelOpt,
    Seed,
    Slug,
    Threads,
    ValidPct,
    WorkspaceOpt,
    app,
    handled,
    note_more_threads_than_cores,
    workspace_of,
)
from pipeline.cli.live import out, show_table
from pipeline.core import competitions
from pipeline.core.errors import UsageError


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"-p {pair!r}: expected key=value, e.g. -p k=3")
        params[key.strip().replace("-", "_")] = value.strip()
    return params


@app.command()
@handled
def train(
    ctx: typer.Context,
    slug: Slug = None,
    model: ModelOpt = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="passes over the training rows")] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="learning rate")] = None,
    bs: Annotated[int | None, typer.Option(min=1, help="batch size")] = None,
    valid_pct: ValidPct = 0.1,
    seed: Seed = 0,
    folds: Annotated[int | None, typer.Option(help="K models on K stratified folds, scored out-of-fold on every row "
                                                   "(0 = one validation split; default: 5 for tables under 5,000 "
                                                   "rows and images under 2,000, else 0)", show_default=False)] = None,
    full: Annotated[bool, typer.Option("--full", help="after validating, refit on all rows for the "
                                                      "submission")] = False,
    device: Device = "auto",
    features: Annotated[str | None, typer.Option(help="feature builder for tables: generic; houses for House "
                                                      "Prices; titanic (woman-child groups, computed inside each "
                                                      "fold) or titanic-plain for Titanic (default: the "
                                                      "competition's own)",
                                                 metavar="NAME")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="model option key=value",
                                                    metavar="KEY=VALUE")] = None,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="also write TensorBoard event files (needs "
                                                                    "the tensorboard extra)")] = False,
    threads: Threads = 0,
    time_limit: Annotated[float, typer.Option(min=0.0, help="seconds the whole run may take: fewer boosting rounds "
                                                            "or epochs when short, up to 5 boosters averaged when "
                                                            "long (lgbm, catboost, blend, cnn, tabular; 0 = no "
                                                            "limit)")] = 0.0,
    workspace: WorkspaceOpt = None,
) -> None:
    """Fit a model, score it on a validation split or out-of-fold, and record the run."""
    from pipeline.cli.live import TrainDisplay, epoch_table
    from pipeline.training import prepared
    from pipeline.training.honesty import few_rows_note

    ws = workspace_of(ctx, workspace)
    comp = api.competition(slug, ws)
    params: dict[str, Any] = _parse_params(param or [])
    note_more_threads_than_cores(threads)
    display = TrainDisplay(epochs=None)  # each fit's stage says how many epochs it trains
    stages: list[str] = []

    def stage(text: str, epochs: int | None) -> None:
        stages.append(text)
        display.stage(text, epochs)

    with display.running():
        run = api.train(comp, model, folds=folds, full=full, epochs=epochs, lr=lr, bs=bs, valid_pct=valid_pct,
                        seed=seed, device=device, features=features, params=params, tensorboard=tensorboard,
                        threads=threads, time_limit=time_limit, workspace=ws, on_epoch=display.epoch,
                        on_stage=stage)
    if (table := epoch_table(display.rows, run.metrics.stopped_early)) is not None:
        show_table(table)
    m, metric = run.metrics, comp.scorer
    if m.fold_scores:
        line = (f"{comp.slug} {run.model}: out-of-fold {metric.title} {metric.format(m.score)} on all "
                f"{m.valid_rows:,} rows ({len(m.fold_scores)} folds, spread ± {metric.format(m.fold_std)})")
    else:
        line = (f"{comp.slug} {run.model}: validation {metric.title} {metric.format(m.score)} ({m.valid_rows:,} "
                f"row{'s' * (m.valid_rows != 1)})")
    out.print(line + f"; fit {m.fit_seconds:.1f}s, predict {m.predict_seconds:.2f}s")
    if run.model == "blend":  # what it blended: a member given weight 0 is in name only
        from pipeline.training import listing

        out.print(f"blend as trained: {listing.options_text(run, comp)}")
    if m.target_scores and comp.targets:  # several targets: each one's score, by the metric the mean averages
        each = comp.for_target(comp.targets[0]).scorer
        out.print(f"each target's {each.title}: " + ", ".join(f"{name} {each.format(value)}"
                                                                for name, value in m.target_scores.items()))
        if unscored := [name for name, value in m.target_scores.items() if value != value]:
            out.print(f"-: the held-out rows hold one class of {', '.join(unscored)}, so no {each.title}; the mean "
                      "leaves them out" + (f" (--folds {m.most_folds} scores every row)" if m.most_folds else ""))
    if (note := few_rows_note(m)) is not None:
        typer.echo(f"WARNING: {note}", err=True)
    _forecast_warning(comp)
    if folds is None and m.fold_scores:
        _fewer_folds(comp, len(m.fold_scores))
    if m.submits_with == "full":
        how_long = f" for {m.full_epochs} epochs" if m.full_epochs else ""
        out.print(f"refit on all rows{how_long}: submissions use that model")
    elif m.submits_with == "fold-mean":
        out.print(f"submissions average the {len(m.fold_scores)} fold models")
    if m.interrupted:
        out.print("interrupted: kept the best weights so far")
    elif (run.folder / prepared.FILE).is_file():
        out.print("test rows predicted and kept with the run: kc submit writes them without predicting")
    elif stages and stages[-1].endswith(prepared.LATER):  # why not: the live line that said so is gone
        out.print(stages[-1])
    if m.out_of_time:
        out.print("cut at --time-limit: a fit kept its best epoch before the deadline (give more seconds for all)")
    out.print(f"run {run.run_id} -> {run.folder}")
    for png in run.plots:
        out.print(f"  {png}")
    if tensorboard:
        out.print(f"TensorBoard: tensorboard --logdir {ws.runs_dir(comp.slug)}")


def _forecast_warning(comp: competitions.Competition) -> None:
    """Warn when test's dates all come after train's, so that random folds flatter a forecast."""
    from pipeline.training.honesty import forecast_note

    if (note := forecast_note(comp)) is not None:
        typer.echo(f"WARNING: {note}", err=True)


def _fewer_folds(comp: competitions.Competition, folds: int) -> None:
    """Say why kc took fewer folds than its usual 5 when --folds was not given."""
    from pipeline.training.honesty import AUTO_FOLDS

    if 1 < folds < AUTO_FOLDS and comp.targets and comp.is_classification:  # class sizes, or 1s sharing rows
        out.print(f"{folds} folds, not {AUTO_FOLDS}: kc finds no more that each hold both classes of every target")
    elif 1 < folds < AUTO_FOLDS:
        what = "the rarest class has" if comp.is_classification else "train has"
        out.print(f"{folds} folds, not {AUTO_FOLDS}: {what} only {folds} rows")


@app.command()
@handled
def compare(
    ctx: typer.Context,
    slug: Slug = None,
    models: Annotated[str | None, typer.Option("--models", help="comma-separated models to compare (default: every "
                                                               "model that fits, but cnn)", metavar="A,B")] = None,
    folds: Annotated[int | None, typer.Option(min=2, max=20, help="every model is scored out-of-fold on these same "
                                                                  "folds  [default: 5, or as many as the rarest class "
                                                                  "has rows]", show_default=False)] = None,
    seed: Seed = 0,
    threads: Threads = 0,
    workspace: WorkspaceOpt = None,
) -> None:
    """Score every model that fits on the same folds, in one leaderboard; each is a run you can submit."""
    from pipeline.cli.live import TrainDisplay
    from pipeline.training.comparison import HEAD, rows

    ws = workspace_of(ctx, workspace)
    display = TrainDisplay(epochs=None)

    def starting(name: str, i: int, n: int) -> None:
        display.stage(f"model {i + 1}/{n}: {name}", None)
        display.model_name = name  # "tabular fold 1/5: valid_loss ... after 30 epochs", not "fold 1/5: ..."

    note_more_threads_than_cores(threads)
    with display.running():
        result = api.compare(slug, models.split(",") if models else None, folds=folds, seed=seed, threads=threads,
                             workspace=ws, on_model=starting, on_epoch=display.epoch, on_stage=display.stage)
    comp, metric = result.competition, result.competition.scorer
    table = Table(*HEAD, title=f"{comp.slug}: {metric.title} out-of-fold, the same {result.folds} folds (seed "
                               f"{seed}), best first")
    for row in rows(result):
        table.add_row(*row)
    show_table(table)
    if folds is None:
        _fewer_folds(comp, result.folds)
    if result.left_out:
        out.print(f"left out: {', '.join(result.left_out)} (slow on a CPU; add it with --models)")
    from pipeline.training.honesty import few_rows_note

    scored = [e.run for e in result.entries if e.run is not None]
    if scored and (note := few_rows_note(scored[0].metrics)) is not None:
        typer.echo(f"WARNING: {note}", err=True)
    if scored:
        _forecast_warning(comp)
    best = next((e.run for e in result.entries if e.run is not None), None)
    if best is not None:
        out.print(f"submit the best with `kc submit {comp.slug} --run {best.run_id}`, or blend several with "
                  f"`kc ensemble {comp.slug} RUN RUN ...`")


@app.command()
@handled
def models(ctx: typer.Context, slug: Slug = None, workspace: WorkspaceOpt = None) -> None:
    """List kc's models, with the tasks each takes (only those fitting SLUG when given)."""
    from pipeline.models import MODELS

    table = Table("model", "tasks", "inputs", "what it is", title="kc models")
    for name in api.available_models(slug, workspace_of(ctx, workspace)):
        info = MODELS[name]
        table.add_row(name, ", ".join(info.tasks), ", ".join(info.modalities), info.description)
    show_table(table)


@app.command()
@handled
def runs(ctx: typer.Context, slug: Slug = None, workspace: WorkspaceOpt = None) -> None:
    """List the competition's runs, best validation score first (by its metric)."""
    from pipeline.training import listing
    from pipeline.training.records import same_description

    ws = workspace_of(ctx, workspace)
    comp = api.competition(slug, ws)
    found = api.runs(comp, ws)
    if not found and not found.damaged:
        out.print(f"no runs for {comp.slug} yet: try `kc train {comp.slug}`")
        return

    table = Table(*(c.label for c in listing.columns(comp)), title=f"{comp.slug} runs")
    rows = [*(listing.run_cells(comp, r) for r in found), *(listing.damaged_cells(comp, d) for d in found.damaged)]
    for cells in rows:
        table.add_row(*(c.text for c in cells))
    labels = {c.key: c.label for c in listing.columns(comp)}
    left_out = show_table(table, drop=tuple(labels[k] for k in ("options", "submits", "spread", "fit", "scored")),
                          whole=(labels["run"], labels["model"]),
                          elsewhere=f" (a wider terminal or `kc report {comp.slug}` shows them)")
    if labels["options"] in left_out:  # a damaged run says why in that column
        for damaged in found.damaged:
            out.print(f"{damaged.run_id} is damaged: {damaged.reason}")
    if stale := [r.run_id for r in found if not same_description(comp, r.metrics) and r.metrics.metric == comp.metric]:
        out.print(f"(stale): {', '.join(stale)} trained under another target, classes order or value_floor in "
                  "competition.json; kc submit passes over them, `kc train` again to compare")
    for again, first in listing.repeats(list(found), comp).items():
        out.print(f"{again} repeats {first} (same model, options, folds, seed and data): one result, not two")


@app.command()
@handled
def tune(
    ctx: typer.Context,
    slug: Slug = None,
    model: ModelOpt = None,
    trials: Annotated[int | None, typer.Option(min=1, help="the study's trial budget, shared by all its workers on "
                                                           "every machine")] = None,
    timeout: Annotated[float | None, typer.Option(min=0.0, help="seconds after which a worker starts no new "
                                                                "trial")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes on this machine")] = 1,
    storage: Annotated[str | None, typer.Option(help="any Optuna storage: postgresql://USER@HOST/DB, mysql://..., "
                                                     "sqlite:///FILE or journal:FILE (default: "
                                                     "competitions/SLUG/tune.db)")] = None,
    study: Annotated[str | None, typer.Option(help="the study to create or join (default: SLUG-MODEL)")] = None,
    show_study: Annotated[bool, typer.Option("--show", help="print the study's best trials and draw its "
                                                            "PNGs")] = False,
    valid_pct: ValidPct = 0.1,
    seed: Seed = 0,
    folds: Annotated[int | None, typer.Option(help="score each trial out-of-fold on K folds (0 = one split; default: "
                                                   "5 for tables under 5,000 rows and images under 2,000, else 0)",
                                              show_default=False)] = None,
    device: Device = "auto",
    features: Annotated[str | None, typer.Option(help="feature builder for tables")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="search key=LOW:HIGH[:log] or "
                                                                          "key=A|B|C; fix key=VALUE",
                                                    metavar="KEY=RANGE")] = None,
    threads: Annotated[int, typer.Option(min=0, help="threads in all, shared by the workers, at most the cores kc "
                                                     "may run on (0 = the cores idle at the start)")] = 0,
    workspace: WorkspaceOpt = None,
) -> None:
    """Search a model's options with Optuna (TPE, pruning); each trial is a kc run scored by the metric."""
    ws = workspace_of(ctx, workspace)
    comp = api.competition(slug, ws)
    metric = comp.scorer

    def options(params: dict[str, Any]) -> str:
        return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())

    def on_trial(t: Any) -> None:
        what = f"{metric.title} {metric.format(t.score)}" if t.state == "COMPLETE" else t.note
        out.print(f"trial {t.number}: {what}  {options(t.params)}" + (f"  (run {t.run_id})" if t.run_id else ""))

    if show_study:
        result = api.study(comp, model, storage=storage, name=study, workspace=ws)
    elif trials is None:
        raise UsageError(f"how many trials? e.g. `kc tune {comp.slug} --trials 20` (or --show to see a study)")
    else:
        note_more_threads_than_cores(threads)
        result = api.tune(comp, model, trials=trials, timeout=timeout, workers=workers, storage=storage,
                          study=study, valid_pct=valid_pct, seed=seed, folds=folds, device=device,
                          features=features, params=_parse_params(param or []), threads=threads, workspace=ws,
                          on_trial=on_trial)
    table = Table("trial", metric.title, "state", "run", "s", "options", title=f"{result.study}: best trials")
    for t in result.trials[:10]:
        table.add_row(str(t.number), metric.format(t.score), t.note or t.state.lower(), t.run_id or "-",
                      f"{t.seconds:.1f}" if t.seconds is not None else "-", options(t.params))
    show_table(table)
    counts = ", ".join(f"{result.count(s)} {w}" for s, w in (("COMPLETE", "complete"), ("PRUNED", "pruned"),
                                                             ("FAIL", "failed"), ("RUNNING", "running")))
    out.print(f"study {result.study} in {result.storage}: {len(result.trials)} of {result.budget} trials ({counts})")
    if result.best is not None and result.best.run_id:
        out.print(f"best: trial {result.best.number}, {metric.title} {metric.format(result.best.score)}; submit it "
                  f"with `kc submit {comp.slug} --run {result.best.run_id}`")
    for path in result.plots:
        out.print(f"  {path}")
    for problem in result.problems:
        typer.echo(f"NOTE: {problem}", err=True)
    if result.interrupted:
        more = "run the same command" if len(result.trials) < (result.budget or 0) else "raise --trials"
        out.print(f"interrupted: running trials were marked failed; {more} to go on")
        raise typer.Exit(130)
