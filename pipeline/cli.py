"""The `kc` command line: parse options, call one library function, show the result."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from pipeline import competitions
from pipeline.errors import KcError, UsageError
from pipeline.workspace import Workspace

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="kc: run Kaggle competitions end to end (fetch, convert, train, submit).")
out = Console(highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

Slug = Annotated[str, typer.Argument(help="competition slug, e.g. titanic or digit-recognizer")]


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
            typer.echo(f"Error: {where}{exc.strerror or exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: Annotated[Path | None, typer.Option(help="workspace root (default: $KC_WORKSPACE or .)")] = None,
) -> None:
    ctx.obj = Workspace.resolve(workspace)


def _show_table(table: Table) -> None:
    """Print a table without squeezing it into 80 columns when output is not a terminal."""
    (out if out.is_terminal else Console(highlight=False, width=200)).print(table)


def _ws(ctx: typer.Context) -> Workspace:
    return ctx.obj if isinstance(ctx.obj, Workspace) else Workspace.resolve()


def _bytes_progress(label: str) -> Any:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    console = Console(stderr=True)
    return Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


@app.command()
@handled
def fetch(
    ctx: typer.Context,
    slug: Slug,
    from_: Annotated[Path | None, typer.Option("--from", help="a zip as Kaggle serves it, or a folder of CSVs")] = None,
    force: Annotated[bool, typer.Option(help="fetch again even if the files are there")] = False,
) -> None:
    """Get a competition's files: --from a zip or folder, a Kaggle notebook, the Kaggle API, or the bundled copy."""
    from pipeline.fetch import fetch as do_fetch

    comp = competitions.get(slug)
    with _bytes_progress("extracting") as bar:
        task = bar.add_task("extract", total=None)
        result = do_fetch(comp, _ws(ctx), from_, force, progress=lambda done, total: bar.update(task, completed=done,
                                                                                                   total=total))
    where = result.folder
    if result.skipped:
        out.print(f"{slug}: already fetched in {where} (from {result.origin}); use --force to fetch again")
    else:
        out.print(f"{slug}: {', '.join(result.files)} -> {where} (from {result.origin})")
    if result.source == "bundled" and not result.skipped:
        what = "a SAMPLE of" if result.sample else "the full"
        typer.echo(f"NOTE: no Kaggle credentials, so kc used {what} {slug} data bundled with kc. For Kaggle's own "
                   "copy, save an API token from https://www.kaggle.com/settings as ~/.kaggle/kaggle.json "
                   f"and run `kc fetch {slug} --force`.", err=True)


@app.command()
@handled
def convert(
    ctx: typer.Context,
    slug: Slug,
    images: Annotated[bool, typer.Option("--images", help="also write PNGs, one folder per label")] = False,
    force: Annotated[bool, typer.Option(help="rebuild the cache and rewrite PNGs")] = False,
) -> None:
    """Validate the CSVs and cache model-ready arrays (digits) or feature tables (Titanic)."""
    import time

    from pipeline import convert as conv

    comp, ws = competitions.get(slug), _ws(ctx)
    t0 = time.perf_counter()
    result = conv.convert(comp, ws, force)
    seconds = time.perf_counter() - t0
    how = "loaded from cache" if result.from_cache else "converted"
    if isinstance(result, conv.DigitArrays):
        out.print(f"{slug}: {how} in {seconds:.2f}s: train {result.train_images.shape} uint8 + labels, "
                  f"test {result.test_images.shape} uint8 -> {ws.cache_dir(slug)}")
        if images:
            t0 = time.perf_counter()
            with out.status("writing PNGs"):
                root, written = conv.write_digit_pngs(comp, ws, result, force)
            out.print(f"PNGs: {written:,} written in {time.perf_counter() - t0:.1f}s (existing kept) -> {root}")
    else:
        if images:
            raise UsageError(f"--images applies to image competitions; {slug} is tabular")
        out.print(f"{slug}: {how} in {seconds:.2f}s: {len(result.train)} train and {len(result.test)} test rows, "
                  f"{result.train.shape[1]} features -> {ws.cache_dir(slug)}")
        out.print("features: " + ", ".join(result.train.columns))


@app.command()
@handled
def show(
    ctx: typer.Context,
    slug: Slug,
    label: Annotated[int | None, typer.Option(help="only digits with this label")] = None,
    n: Annotated[int, typer.Option("-n", help="how many digits", min=1, max=400)] = 64,
    seed: Annotated[int, typer.Option(help="which random digits")] = 0,
    out_path: Annotated[Path | None, typer.Option("--out", help="PNG to write")] = None,
) -> None:
    """Write a contact sheet of training digits with their labels, and print its path."""
    from pipeline.convert import digit_sheet

    comp, ws = competitions.get(slug), _ws(ctx)
    path = digit_sheet(comp, ws, label, n, seed, out_path)
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
    slug: Slug,
    model: Annotated[str, typer.Option("--model", "-m", help="linear, knn, cnn, sk-logistic or sk-forest")],
    epochs: Annotated[int | None, typer.Option(min=1, help="passes over the training rows")] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="learning rate")] = None,
    bs: Annotated[int | None, typer.Option(min=1, help="batch size")] = None,
    valid_pct: Annotated[float, typer.Option(help="fraction held out for validation")] = 0.1,
    seed: Annotated[int, typer.Option(help="seed for the split and the model")] = 0,
    cv: Annotated[int, typer.Option(help="also k-fold cross-validate (0 = off)")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="model option key=value")] = None,
) -> None:
    """Fit a model, score it on a validation split, and record the run."""
    from pipeline.runs import TrainConfig

    comp, ws = competitions.get(slug), _ws(ctx)
    params: dict[str, Any] = _parse_params(param or [])
    for key, value in (("epochs", epochs), ("lr", lr), ("bs", bs)):
        if value is not None:
            params[key] = value
    cfg = TrainConfig(model=model, params=params, valid_pct=valid_pct, seed=seed, cv=cv, device=device)
    run = train_with_progress(comp, ws, cfg)
    m = run.metrics
    line = f"{slug} {model}: validation accuracy {100 * m['valid_accuracy']:.2f}% ({m['valid_rows']:,} rows)"
    if "cv_accuracy" in m:
        line += f"; {cfg.cv}-fold CV {100 * m['cv_accuracy']:.2f}% ± {100 * m['cv_std']:.2f}"
    out.print(line + f"; fit {m['fit_seconds']:.1f}s, predict {m['predict_seconds']:.2f}s")
    if m["interrupted"]:
        out.print("interrupted: kept the best weights so far")
    out.print(f"run {run.run_id} -> {run.folder}")
    for png in run.plots:
        out.print(f"  {png}")


@app.command()
@handled
def runs(ctx: typer.Context, slug: Slug) -> None:
    """List the competition's runs, best validation score first."""
    from pipeline.runs import list_runs

    comp = competitions.get(slug)
    found = list_runs(comp, _ws(ctx))
    if not found:
        out.print(f"no runs for {slug} yet: try `kc train {slug} --model linear`")
        return
    table = Table("run", "model", "valid acc", "cv acc", "fit s", "options", title=f"{slug} runs")
    for r in found:
        m = r.metrics
        cv = f"{100 * m['cv_accuracy']:.2f}%" if "cv_accuracy" in m else "-"
        options = " ".join(f"{k}={v}" for k, v in r.config["params"].items() if k not in ("seed", "device"))
        table.add_row(r.run_id, r.config["model"], f"{100 * r.score:.2f}%", cv, f"{m['fit_seconds']:.1f}", options)
    _show_table(table)


@app.command()
@handled
def submit(
    ctx: typer.Context,
    slug: Slug,
    run: Annotated[str | None, typer.Option(help="run id (see `kc runs`)")] = None,
    best: Annotated[bool, typer.Option("--best", help="use the best run (the default)")] = False,
    upload: Annotated[bool, typer.Option("--upload", help="send it to Kaggle")] = False,
    message: Annotated[str | None, typer.Option("--message", "-m", help="upload description")] = None,
    wait: Annotated[bool, typer.Option(help="wait for Kaggle's score")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the score")] = 300.0,
) -> None:
    """Predict the test set with a run, write a validated submission, and optionally upload it."""
    from pipeline import submit as sub

    comp, ws = competitions.get(slug), _ws(ctx)
    if run and best:
        raise UsageError("give --run ID or --best, not both")
    with out.status("predicting the test set"):
        written = sub.predict_run(comp, ws, run)
    _show_written(written)
    if upload:
        _upload(comp, ws, written, message, wait, timeout)


def _show_written(written: Any) -> None:
    e = written.entry
    score = f", validation {100 * e['valid_accuracy']:.2f}%" if e["valid_accuracy"] is not None else ""
    out.print(f"wrote {written.path} (valid format; {e['model']} run {e['run']}{score})")


def _upload(comp: competitions.Competition, ws: Workspace, written: Any, message: str | None, wait: bool,
            timeout: float) -> None:
    from pipeline import submit as sub
    from pipeline.runs import git_commit

    e = written.entry
    score = f"valid {e['valid_accuracy']:.4f}" if e["valid_accuracy"] is not None else "valid n/a"
    text = message or f"kc {e['run']}: {e['model']}, {score}, git {git_commit() or 'none'}"
    with out.status("uploading to Kaggle") as status:
        entry = sub.upload(comp, ws, written.path, text, wait=wait, timeout=timeout, on_wait=status.update)
    if entry["status"] == "COMPLETE":
        out.print(f"Kaggle scored it: public score {entry['public_score']} (ref {entry['upload_ref']})")
    elif entry["status"] == "ERROR":
        raise KcError(f"Kaggle could not score {written.path.name}: {entry.get('error') or 'no reason given'}")
    else:
        out.print(f"uploaded (ref {entry['upload_ref']}); not scored yet: see `kc submissions {comp.slug}` later")


@app.command()
@handled
def validate(ctx: typer.Context, slug: Slug, file: Annotated[Path, typer.Argument(help="submission CSV")]) -> None:
    """Check any CSV against the competition's submission format."""
    from pipeline.submit import validate_file

    rows = validate_file(competitions.get(slug), _ws(ctx), file)
    out.print(f"{file}: valid {slug} submission ({rows:,} rows)")


@app.command()
@handled
def ensemble(
    ctx: typer.Context,
    slug: Slug,
    run_ids: Annotated[list[str], typer.Argument(help="two or more run ids")],
    method: Annotated[str, typer.Option(help="mean (average probabilities) or vote")] = "mean",
) -> None:
    """Combine runs into one submission, scored on the shared validation split when there is one."""
    from pipeline import submit as sub

    comp, ws = competitions.get(slug), _ws(ctx)
    with out.status("predicting the test set with each run"):
        written, score = sub.ensemble(comp, ws, run_ids, method)
    if score is None:
        out.print("the runs used different validation splits, so the ensemble has no validation score")
    _show_written(written)


@app.command()
@handled
def submissions(ctx: typer.Context, slug: Slug) -> None:
    """Show the submission log, refreshed from Kaggle when online."""
    from pipeline import submit as sub

    comp, ws = competitions.get(slug), _ws(ctx)
    entries, note = sub.refresh(comp, ws)
    if not entries:
        out.print(f"no submissions for {slug} yet: try `kc submit {slug}`")
        return
    table = Table("file", "model", "valid acc", "status", "public score", "ref", title=f"{slug} submissions")
    for e in entries:
        acc = f"{100 * e['valid_accuracy']:.2f}%" if e.get("valid_accuracy") is not None else "-"
        table.add_row(e["file"], e["model"], acc, e["status"], e.get("public_score") or "-",
                      str(e.get("upload_ref") or "-"))
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

    comp = competitions.get("digit-recognizer")
    for r in predict_images(comp, _ws(ctx), paths, run, out_path):
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
    table = Table("competition", "model", "validation accuracy", "5-fold CV", "time (s)",
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


def train_with_progress(comp: competitions.Competition, ws: Workspace, cfg: Any) -> Any:
    """Run `runs.train` under a live progress bar showing loss and accuracy per epoch."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pipeline.runs import train as do_train

    epochs = cfg.params.get("epochs")
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
            bar.update(task, completed=r["epoch"], total=epochs, status=status)

        return do_train(comp, ws, cfg, on_epoch=on_epoch, on_stage=on_stage)


def main() -> None:
    """Console-script entry point."""
    app()
