"""The `kc` command line: parse options, call one library function, show the result."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from typer._click import exceptions as click_errors  # Typer ships its own copy of click

from pipeline import competitions
from pipeline.errors import KcError, UsageError
from pipeline.workspace import Workspace

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="kc: run Kaggle competitions end to end (fetch, convert, train, submit).")
out = Console(highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

Slug = Annotated[str | None, typer.Argument(help="competition slug, e.g. titanic (optional with one competition)",
                                             metavar="SLUG", show_default=False)]


def handled(fn: F) -> F:
    """Turn a KcError into one `Error:` line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KcError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("Error: interrupted", err=True)
            raise typer.Exit(130) from None
        except OSError as exc:  # disk full, permissions, a folder where a file should be
            where = f"{exc.filename}: " if exc.filename else ""
            typer.echo(f"Error: {where}{(exc.strerror or str(exc)).lower()}", err=True)
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort, click_errors.ClickException):
            raise
        except Exception as exc:  # a bug in kc: one line, with the full story saved for a bug report
            saved = _save_traceback()
            text = " ".join(str(exc).split())[:200]
            typer.echo(f"Error: unexpected {type(exc).__name__}: {text} (full traceback in {saved})",
                       err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _save_traceback() -> Path:
    import tempfile
    import traceback
    from datetime import datetime

    folder = Path(tempfile.gettempdir()) / "kc-tracebacks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}.txt"
    path.write_text(traceback.format_exc())
    return path


def _one_line_usage_error(self: click_errors.UsageError, file: Any = None) -> None:
    """Usage errors as one `Error:` line that says where help is (click prints a usage block by default)."""
    where = f" (see `{self.ctx.command_path} --help`)" if self.ctx is not None else ""
    typer.echo(f"Error: {self.format_message()}{where}", err=True, file=file)


click_errors.UsageError.show = _one_line_usage_error  # type: ignore[method-assign]


def _version(value: bool) -> None:
    if value:
        import pipeline

        typer.echo(f"kc {pipeline.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: Annotated[Path | None, typer.Option(help="workspace root (default: $KC_WORKSPACE or .)")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print kc's version and exit")] = False,
) -> None:
    ctx.obj = Workspace.resolve(workspace)


def _show_table(table: Table) -> None:
    """Print a table without squeezing it into 80 columns when output is not a terminal."""
    (out if out.is_terminal else Console(highlight=False, width=200)).print(table)


def _ws(ctx: typer.Context) -> Workspace:
    return ctx.obj if isinstance(ctx.obj, Workspace) else Workspace.resolve()


def _comp(ctx: typer.Context, slug: str | None) -> tuple[competitions.Competition, Workspace]:
    """The competition named, or the only one in the workspace; and the workspace."""
    ws = _ws(ctx)
    return competitions.get(slug or ws.only_competition(), ws.root), ws


def _describe(comp: competitions.Competition, folder: Path) -> None:
    """Print an inferred description in a few lines."""
    what = comp.task + (f" ({', '.join(comp.classes)} written as {comp.labels})" if comp.classes else " (values)")
    inputs = f"pixels {comp.image_shape[0]}×{comp.image_shape[1]}" if comp.image_shape else "a table"
    out.print(f"kc described {comp.slug} from its files -> {folder / competitions.DESCRIPTION}")
    out.print(f"  id {comp.id_column} ({comp.id_type}), target {comp.target_column}: {what}")
    out.print(f"  inputs: {inputs}; metric: {comp.metric}; default model: {comp.default_model}")
    out.print("  edit competition.json to correct any of it (e.g. \"metric\": \"f1\")")


def _bytes_progress(label: str) -> Any:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    console = Console(stderr=True)
    return Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


@app.command()
@handled
def fetch(
    ctx: typer.Context,
    slug: Slug = None,
    from_: Annotated[Path | None, typer.Option("--from", help="a zip as Kaggle serves it, or a folder of CSVs")] = None,
    force: Annotated[bool, typer.Option(help="fetch again even if the files are there")] = False,
    metric: Annotated[str | None, typer.Option(help="metric of a competition kc does not know (default: accuracy "
                                                      "or rmse)")] = None,
) -> None:
    """Get a competition's files: --from a zip or folder, a Kaggle notebook, the Kaggle API, or the bundled copy."""
    from pipeline.fetch import fetch as do_fetch
    from pipeline.kaggle_api import credentials_warning

    if slug is None:
        raise UsageError("which competition? e.g. `kc fetch titanic`")
    with _bytes_progress("extracting") as bar:
        task = bar.add_task("extract", total=None)
        result = do_fetch(slug, _ws(ctx), from_, force, metric=metric,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    slug = result.competition.slug
    where = result.folder
    if result.skipped:
        out.print(f"{slug}: already fetched in {where} (from {result.origin}); use --force to fetch again")
    else:
        out.print(f"{slug}: {', '.join(result.files)} -> {where} (from {result.origin})")
    if result.note:
        typer.echo(f"NOTE: {result.note}", err=True)
    if result.source == "kaggle" and (warning := credentials_warning()):  # the credentials worked: guard them
        typer.echo(f"WARNING: {warning}", err=True)
    if result.inferred and not result.skipped:
        _describe(result.competition, where)
    if result.source == "bundled" and not result.skipped:
        what = "a SAMPLE of" if result.sample else "the full"
        typer.echo(f"NOTE: no Kaggle credentials, so kc used {what} {slug} data bundled with kc. For Kaggle's own "
                   "copy, save an API token from https://www.kaggle.com/settings as ~/.kaggle/kaggle.json "
                   f"and run `kc fetch {slug} --force`.", err=True)


@app.command()
@handled
def convert(
    ctx: typer.Context,
    slug: Slug = None,
    images: Annotated[bool, typer.Option("--images", help="also write PNGs, one folder per label")] = False,
    force: Annotated[bool, typer.Option(help="rebuild the cache and rewrite PNGs")] = False,
) -> None:
    """Validate the CSVs and cache model-ready arrays (pixels) or feature tables (tables)."""
    import time

    from pipeline import dataset, pixels

    comp, ws = _comp(ctx, slug)
    if images and comp.modality != "pixels":
        raise UsageError(f"--images applies to pixel competitions; {comp.slug} is {comp.modality}")
    t0 = time.perf_counter()
    result = dataset.convert(comp, ws, force)
    seconds = time.perf_counter() - t0
    if isinstance(result, pixels.PixelArrays):
        how = "loaded from cache" if result.from_cache else "converted"
        out.print(f"{comp.slug}: {how} in {seconds:.2f}s: train {result.train_images.shape} uint8 + labels, "
                  f"test {result.test_images.shape} uint8 -> {ws.cache_dir(comp.slug)}")
        if images:
            t0 = time.perf_counter()
            with out.status("writing PNGs"):
                root, written = pixels.write_pngs(comp, ws, result, force)
            out.print(f"PNGs: {written:,} written in {time.perf_counter() - t0:.1f}s (existing kept) -> {root}")
        return
    out.print(f"{comp.slug}: converted in {seconds:.2f}s: {len(result.X):,} train and {len(result.X_test):,} test "
              f"rows, {result.X.shape[1]} features ({result.features['builder']} builder) -> {ws.cache_dir(comp.slug)}")
    for what, columns in result.features.get("report", {}).items():
        if columns:
            out.print(f"  {what}: {', '.join(map(str, columns))}")
    if "report" not in result.features:
        out.print("features: " + ", ".join(result.feature_names))


@app.command()
@handled
def show(
    ctx: typer.Context,
    slug: Slug = None,
    label: Annotated[str | None, typer.Option(help="only images with this label")] = None,
    n: Annotated[int, typer.Option("-n", help="how many digits", min=1, max=400)] = 64,
    seed: Annotated[int, typer.Option(help="which random digits")] = 0,
    out_path: Annotated[Path | None, typer.Option("--out", help="PNG to write")] = None,
) -> None:
    """Write a contact sheet of training images with their labels, and print its path."""
    from pipeline.pixels import sheet

    comp, ws = _comp(ctx, slug)
    path = sheet(comp, ws, label, n, seed, out_path)
    out.print(str(path))


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
    model: Annotated[str | None, typer.Option("--model", "-m", help="a model name (default: the competition's "
                                                                     "own; see `kc models`)")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="passes over the training rows")] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="learning rate")] = None,
    bs: Annotated[int | None, typer.Option(min=1, help="batch size")] = None,
    valid_pct: Annotated[float, typer.Option(help="fraction held out for validation")] = 0.1,
    seed: Annotated[int, typer.Option(help="seed for the split and the model")] = 0,
    folds: Annotated[int, typer.Option(help="K models on K stratified folds, scored out-of-fold on every row "
                                            "(0 = one validation split)")] = 0,
    full: Annotated[bool, typer.Option("--full", help="after validating, refit on all rows for the "
                                                      "submission")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    features: Annotated[str | None, typer.Option(help="feature builder for tables: generic, or titanic "
                                                      "(default: the competition's own)")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="model option key=value")] = None,
) -> None:
    """Fit a model, score it on a validation split by the competition's metric, and record the run."""
    from pipeline.runs import TrainConfig

    comp, ws = _comp(ctx, slug)
    params: dict[str, Any] = _parse_params(param or [])
    for key, value in (("epochs", epochs), ("lr", lr), ("bs", bs)):
        if value is not None:
            params[key] = value
    cfg = TrainConfig(model=model or comp.default_model, params=params, valid_pct=valid_pct, seed=seed, folds=folds,
                      full=full, device=device, features=features)
    run = train_with_progress(comp, ws, cfg)
    m, metric = run.metrics, comp.scorer
    if m.fold_scores:
        line = (f"{comp.slug} {run.model}: out-of-fold {metric.title} {metric.format(m.score)} on all "
                f"{m.valid_rows:,} rows ({len(m.fold_scores)} folds, spread ± {metric.format(m.fold_std)})")
    else:
        line = f"{comp.slug} {run.model}: validation {metric.title} {metric.format(m.score)} ({m.valid_rows:,} rows)"
    out.print(line + f"; fit {m.fit_seconds:.1f}s, predict {m.predict_seconds:.2f}s")
    if m.submits_with == "full":
        epochs = f" for {m.full_epochs} epochs" if m.full_epochs else ""
        out.print(f"refit on all rows{epochs}: submissions use that model")
    elif m.submits_with == "fold-mean":
        out.print(f"submissions average the {len(m.fold_scores)} fold models")
    if m.interrupted:
        out.print("interrupted: kept the best weights so far")
    out.print(f"run {run.run_id} -> {run.folder}")
    for png in run.plots:
        out.print(f"  {png}")


@app.command()
@handled
def models(ctx: typer.Context, slug: Slug = None) -> None:
    """List kc's models, with the tasks each takes (only those fitting SLUG when given)."""
    from pipeline.models import MODELS, fitting

    names = list(MODELS) if slug is None else fitting(competitions.get(slug, _ws(ctx).root))
    table = Table("model", "tasks", "inputs", "what it is", title="kc models")
    for name in names:
        info = MODELS[name]
        table.add_row(name, ", ".join(info.tasks), ", ".join(info.modalities), info.description)
    _show_table(table)


@app.command()
@handled
def runs(ctx: typer.Context, slug: Slug = None) -> None:
    """List the competition's runs, best validation score first (by its metric)."""
    from pipeline.runs import scan

    comp, ws = _comp(ctx, slug)
    found, damaged = scan(comp, ws)
    if not found and not damaged:
        out.print(f"no runs for {comp.slug} yet: try `kc train {comp.slug}`")
        return
    metric = comp.scorer
    table = Table("run", "model", metric.title, "scored on", "spread", "submits with", "fit s", "options",
                  title=f"{comp.slug} runs")
    for r in found:
        m = r.metrics
        scored = f"OOF, {m.valid_rows:,} rows" if m.scored_on == "oof" else f"split, {m.valid_rows:,} rows"
        spread = f"± {metric.format(m.fold_std)}" if m.fold_scores else "-"
        options = " ".join(f"{k}={v}" for k, v in r.config.params.items() if k not in ("seed", "device"))
        table.add_row(r.run_id, r.model, metric.format(r.score), scored, spread, m.submits_with,
                      f"{m.fit_seconds:.1f}", options)
    for d in damaged:
        table.add_row(d.run_id, "DAMAGED", "-", "-", "-", "-", "-", d.reason)
    _show_table(table)


@app.command()
@handled
def submit(
    ctx: typer.Context,
    slug: Slug = None,
    run: Annotated[str | None, typer.Option(help="run id (see `kc runs`)")] = None,
    best: Annotated[bool, typer.Option("--best", help="use the best run (the default)")] = False,
    upload: Annotated[bool, typer.Option("--upload", help="send it to Kaggle")] = False,
    message: Annotated[str | None, typer.Option("--message", "-m", help="upload description")] = None,
    wait: Annotated[bool, typer.Option(help="wait for Kaggle's score")] = True,
    timeout: Annotated[float, typer.Option(min=0.0, help="seconds to wait for the score")] = 300.0,
) -> None:
    """Predict the test set with a run, write a validated submission, and optionally upload it."""
    from pipeline import submit as sub

    comp, ws = _comp(ctx, slug)
    if run and best:
        raise UsageError("give --run ID or --best, not both")
    with out.status("predicting the test set"):
        written = sub.predict_run(comp, ws, run)
    _show_written(comp, written)
    if upload:
        _upload(comp, ws, written, message, wait, timeout)


def _show_written(comp: competitions.Competition, written: Any) -> None:
    e = written.entry
    score = f", validation {comp.scorer.title} {comp.scorer.format(e.valid_score)}" if e.valid_score is not None else ""
    what = "wrote" if written.new else "already written, unchanged:"
    out.print(f"{what} {written.path} (valid format; {e.model} run {e.run}{score})")
    if e.sample:
        out.print("note: predicted from kc's bundled SAMPLE data, not Kaggle's full data: not for upload")


def _upload(comp: competitions.Competition, ws: Workspace, written: Any, message: str | None, wait: bool,
            timeout: float) -> None:
    from pipeline import submit as sub
    from pipeline.runs import git_commit

    e = written.entry
    score = f"valid {e.metric} {e.valid_score:.4f}" if e.valid_score is not None else "valid n/a"
    text = message or f"kc {e.run}: {e.model}, {score}, git {git_commit() or 'none'}"
    with out.status("uploading to Kaggle") as status:
        entry = sub.upload(comp, ws, written.path, text, wait=wait, timeout=timeout, on_wait=status.update)
    if entry.status == "COMPLETE":
        out.print(f"Kaggle scored it: public score {entry.public_score} (ref {entry.upload_ref})")
    elif entry.status == "ERROR":
        raise KcError(f"Kaggle could not score {written.path.name}: {entry.error or 'no reason given'}")
    else:
        out.print(f"uploaded (ref {entry.upload_ref}); not scored yet: see `kc submissions {comp.slug}` later")


@app.command()
@handled
def validate(
    ctx: typer.Context,
    args: Annotated[list[str], typer.Argument(help="[SLUG] FILE: the submission CSV to check", metavar="[SLUG] FILE")],
) -> None:
    """Check any CSV against the competition's submission format."""
    from pipeline.submit import validate_file

    if len(args) > 2:
        raise UsageError("expected [SLUG] FILE")
    slug, file = (None, args[0]) if len(args) == 1 else args
    comp, ws = _comp(ctx, slug)
    rows = validate_file(comp, ws, Path(file))
    out.print(f"{file}: valid {comp.slug} submission ({rows:,} rows)")


@app.command()
@handled
def ensemble(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="competition slug")],
    run_ids: Annotated[list[str], typer.Argument(help="two or more run ids")],
    method: Annotated[str, typer.Option(help="weighted (weights chosen on the runs' shared validation rows), "
                                             "mean, or vote")] = "weighted",
    upload: Annotated[bool, typer.Option("--upload", help="send it to Kaggle")] = False,
    message: Annotated[str | None, typer.Option("--message", "-m", help="upload description")] = None,
    wait: Annotated[bool, typer.Option(help="wait for Kaggle's score")] = True,
    timeout: Annotated[float, typer.Option(min=0.0, help="seconds to wait for the score")] = 300.0,
) -> None:
    """Blend runs into one submission, with weights chosen on the validation rows they share."""
    from pipeline.ensemble import ensemble as do_ensemble

    comp, ws = _comp(ctx, slug)
    with out.status("predicting the test set with each run"):
        result = do_ensemble(comp, ws, run_ids, method)
    metric = comp.scorer
    if result.score is None:
        out.print("the runs were scored on different rows, so the ensemble has no validation score")
    else:
        where = "out-of-fold" if result.scored_on == "oof" else "on the shared validation split"
        table = Table("run", "weight", metric.title, title=f"ensemble, scored {where}")
        for run_id, member_score in result.members.items():
            table.add_row(run_id, f"{result.weights[run_id]:.2f}", metric.format(member_score))
        table.add_row("blend", "", metric.format(result.score))
        _show_table(table)
        best_id = min(result.members, key=lambda r: metric.sort_key(result.members[r]))
        if not metric.better(result.score, result.members[best_id]):
            out.print(f"the blend is no better than its best member ({best_id}): submit that run instead")
    _show_written(comp, result.written)
    if upload:
        _upload(comp, ws, result.written, message, wait, timeout)


@app.command()
@handled
def submissions(ctx: typer.Context, slug: Slug = None) -> None:
    """Show the submission log, refreshed from Kaggle when online."""
    from pipeline import submit as sub

    comp, ws = _comp(ctx, slug)
    entries, note = sub.refresh(comp, ws)
    if not entries:
        out.print(f"no submissions for {comp.slug} yet: try `kc submit {comp.slug}`")
    else:
        table = Table("file", "model", "valid score", "data", "status", "public score", "ref",
                      title=f"{comp.slug} submissions")
        for e in entries:
            valid = f"{e.metric} {e.valid_score:.4f}" if e.valid_score is not None else "-"
            table.add_row(e.file, e.model, valid, "SAMPLE" if e.sample else "full", e.status, e.public_score or "-",
                          str(e.upload_ref or "-"))
        _show_table(table)
    if note:
        typer.echo(f"NOTE: {note}", err=True)


@app.command("predict-image")
@handled
def predict_image(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="PNG or JPEG photos of handwritten digits")],
    run: Annotated[str | None, typer.Option(help="digit run id (default: the best)")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="PNG to write (or a folder for several)")] = None,
) -> None:
    """Classify photos of your own handwritten digits, MNIST-style, and draw what the model saw."""
    from pipeline.handwriting import predict_images

    comp, ws = _comp(ctx, "digit-recognizer")
    for r in predict_images(comp, ws, paths, run, out_path):
        guesses = ", ".join(f"{label} ({100 * p:.1f}%)" for label, p in r.top)
        out.print(f"{r.path}: {guesses}")
        out.print(f"  picture: {r.picture}")


@app.command()
@handled
def demo(ctx: typer.Context) -> None:
    """Offline, on the bundled data: fetch, convert, train linear/knn/cnn, write validated submissions."""
    import time

    from pipeline.demo import run_demo

    t0 = time.perf_counter()
    with out.status("starting") as status:
        result = run_demo(_ws(ctx), say=status.update)
    table = Table("competition", "model", "validation accuracy", "5-fold OOF", "time (s)",
                  title=f"kc demo: {time.perf_counter() - t0:.0f} s on the bundled data")
    for slug, model, score, cv, seconds in result.rows:
        table.add_row(slug, model, f"{100 * score:.2f}%", f"{100 * cv:.2f}%" if cv is not None else "-",
                      f"{seconds:.1f}")
    _show_table(table)
    for note in result.notes:
        out.print(f"note: {note}")
    out.print("submissions (validated):")
    for path in result.submissions:
        out.print(f"  {path}")
    out.print("pictures:")
    for path in result.pngs:
        out.print(f"  {path}")


@app.command()
@handled
def tune(
    ctx: typer.Context,
    slug: Slug = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="a model name (default: the competition's "
                                                                     "own; see `kc models`)")] = None,
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
    valid_pct: Annotated[float, typer.Option(help="fraction held out for validation")] = 0.1,
    seed: Annotated[int, typer.Option(help="seed for the split and the model")] = 0,
    folds: Annotated[int, typer.Option(help="score each trial out-of-fold on K folds (0 = one split)")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    features: Annotated[str | None, typer.Option(help="feature builder for tables")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="search key=LOW:HIGH[:log] or "
                                                                          "key=A|B|C; fix key=VALUE")] = None,
) -> None:
    """Search a model's options with Optuna (TPE, pruning); each trial is a kc run scored by the metric."""
    from pipeline import studies
    from pipeline import tune as tuning
    from pipeline.runs import TrainConfig

    comp, ws = _comp(ctx, slug)
    metric = comp.scorer

    def options(params: dict[str, Any]) -> str:
        return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())

    def on_trial(t: Any) -> None:
        what = f"{metric.title} {metric.format(t.score)}" if t.state == "COMPLETE" else t.note
        out.print(f"trial {t.number}: {what}  {options(t.params)}" + (f"  (run {t.run_id})" if t.run_id else ""))

    if show_study:
        result = studies.show(comp, ws, storage, study, model)
    elif trials is None:
        raise UsageError(f"how many trials? e.g. `kc tune {comp.slug} --trials 20` (or --show to see a study)")
    else:
        cfg = TrainConfig(model=model or comp.default_model, params=_parse_params(param or []), valid_pct=valid_pct,
                          seed=seed, folds=folds, device=device, features=features)
        result = tuning.tune(comp, ws, cfg, trials, timeout, workers, storage, study, on_trial=on_trial)
    table = Table("trial", metric.title, "state", "run", "s", "options", title=f"{result.study}: best trials")
    for t in result.trials[:10]:
        table.add_row(str(t.number), metric.format(t.score), t.note or t.state.lower(), t.run_id or "-",
                      f"{t.seconds:.1f}" if t.seconds is not None else "-", options(t.params))
    _show_table(table)
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


def train_with_progress(comp: competitions.Competition, ws: Workspace, cfg: Any) -> Any:
    """Run `runs.train` under a live progress bar showing loss and accuracy per epoch."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pipeline.runs import train as do_train

    epochs = cfg.params.get("epochs")
    epochs = int(epochs) if str(epochs).isdigit() else None  # -p epochs=N arrives as text
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[status]}"), console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task("starting", total=None, status="")

        def on_stage(text: str) -> None:
            bar.update(task, description=text)

        def on_epoch(r: dict[str, float]) -> None:
            status = f"epoch {r['epoch']:g}: loss {r['train_loss']:.4f}"
            if "valid_accuracy" in r:
                status += f", valid acc {100 * r['valid_accuracy']:.2f}%"
            elif "valid_rmse" in r:
                status += f", valid rmse {r['valid_rmse']:.4f}"
            bar.update(task, completed=r["epoch"], total=epochs, status=status)

        return do_train(comp, ws, cfg, on_epoch=on_epoch, on_stage=on_stage)


def main() -> None:
    """Console-script entry point."""
    app()
