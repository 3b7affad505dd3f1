"""The `kc` command line: parse options, call one library function, show the result."""

from __future__ import annotations

import functools
import shlex
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.table import Table
from typer.core import TyperGroup

from pipeline import api
from pipeline.cli.live import bytes_progress, out, show_table, working
from pipeline.core import competitions, metrics
from pipeline.core.errors import KcError, UsageError
from pipeline.core.workspace import Workspace

# click's UsageError: Typer exports only its subclass BadParameter (its click is a private copy); same attributes
_CLICK_USAGE_ERROR = cast("type[typer.BadParameter]", typer.BadParameter.__base__)


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """A usage error as one `Error:` line that says where help is (click prints a usage block first)."""
    try:
        yield
    except _CLICK_USAGE_ERROR as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `kc` alone shows the help
            raise
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        typer.echo(f"Error: {exc.format_message()}{where}", err=True)
        raise typer.Exit(exc.exit_code) from None


class KcGroup(TyperGroup):
    """kc's command group: parsing the command line, and usage errors on one line."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """Parse kc's own options (`--workspace`, `--version`)."""
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        """Find the command and parse its options, then run it."""
        with _one_line_usage_errors():
            return super().invoke(ctx)


app = typer.Typer(cls=KcGroup, no_args_is_help=True, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 160},
                  help="kc: run Kaggle competitions end to end (fetch, convert, train, submit).")
F = TypeVar("F", bound=Callable[..., Any])

Slug = Annotated[str | None, typer.Argument(help="competition slug, e.g. titanic (optional with one competition)",
                                             metavar="SLUG", show_default=False)]
# options `kc train` and `kc tune` share
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="a model name (default: competition.json's "
                                                                    "default_model; see `kc models`)", metavar="NAME")]
ValidPct = Annotated[float, typer.Option(help="fraction held out for validation")]
Seed = Annotated[int, typer.Option(help="seed for the split and the model")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda")]
Threads = Annotated[int, typer.Option(min=0, help="threads each model may use, at most the cores kc may run on (0 = "
                                               "the cores idle at the start)")]


def _more_threads_than_cores(threads: int) -> None:
    """Say so when --threads asks for more threads than kc may run on: it uses the cores it has."""
    from pipeline.core import threads as cores

    if threads > (n := cores.available()):
        typer.echo(f"NOTE: --threads {threads}: kc may run on {n} core{'s' * (n > 1)} here, so it uses {n}", err=True)


# --workspace is taken before the command (`kc --workspace W train`) and after it (`kc train --workspace W`)
WorkspaceOpt = Annotated[Path | None, typer.Option("--workspace", help="workspace root (default: $KC_WORKSPACE or .)",
                                                   metavar="DIR", show_default=False)]


def handled(fn: F) -> F:
    """Turn a KcError into one `Error:` line on stderr and the error's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():  # kc prints nothing from a library call: its own messages say what happened
                for category in (RuntimeWarning, FutureWarning, UserWarning, DeprecationWarning):
                    warnings.simplefilter("ignore", category)
                return fn(*args, **kwargs)
        except KcError as exc:
            typer.echo(f"Error: {_printable(str(exc))}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("Error: interrupted", err=True)
            raise typer.Exit(130) from None
        except MemoryError:
            typer.echo("Error: out of memory: close other programs, or use a machine with more memory", err=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # disk full, permissions, a folder where a file should be
            where = f"{exc.filename}: " if exc.filename else ""
            typer.echo(f"Error: {where}{(exc.strerror or str(exc)).lower()}", err=True)
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # a bug in kc: one line, with the full story saved for a bug report
            saved = _save_traceback()
            text = " ".join(str(exc).split())[:200]
            typer.echo(f"Error: unexpected {type(exc).__name__}: {text} (full traceback in {saved})",
                       err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _printable(text: str) -> str:
    """Text with control characters escaped: names from files and servers may hold terminal escapes."""
    return text if text.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _save_traceback() -> Path:
    import tempfile
    import traceback
    from datetime import datetime

    folder = Path(tempfile.gettempdir()) / "kc-tracebacks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}.txt"
    path.write_text(traceback.format_exc())
    return path


def _version(value: bool) -> None:
    if value:
        import pipeline

        typer.echo(f"kc {pipeline.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print kc's version and exit")] = False,
) -> None:
    ctx.obj = Workspace.resolve(workspace)


def _ws(ctx: typer.Context, workspace: Path | None = None) -> Workspace:
    """The workspace given after the command, else before it, else $KC_WORKSPACE or the current directory."""
    if workspace is not None:
        return Workspace.resolve(workspace)
    return ctx.obj if isinstance(ctx.obj, Workspace) else Workspace.resolve()


def _describe(comp: competitions.Competition, folder: Path) -> None:
    """Print an inferred description in a few lines."""
    out.print(f"kc described {comp.slug} from its files -> {folder / competitions.DESCRIPTION}")
    for line in describe_lines(comp):
        out.print("  " + line)
    other = next((name for name in metrics.fitting(comp.task, bool(comp.targets)) if name != comp.metric
                  and not (metrics.METRICS[name].log_target or metrics.METRICS[name].log1p_target)  # any values
                  and (metrics.METRICS[name].needs == "proba") == bool(comp.proba_columns)), comp.metric)
    out.print(f"  edit competition.json to correct any of it (e.g. \"metric\": \"{other}\")")


def describe_lines(comp: competitions.Competition) -> list[str]:
    """An inferred description as a few short lines: ids, target and task, submission, metric, columns, files."""
    def listed(names: tuple[str, ...], most: int = 8) -> str:
        shown = ", ".join(names[:most])
        return shown + (f" and {len(names) - most} more" if len(names) > most else "")

    if comp.classes:
        what = f"{comp.task}, {len(comp.classes)} classes ({listed(comp.classes)}) written as {comp.labels}"
    else:
        what = "regression (values)"
    ids = f"id {comp.id_column} ({comp.id_type})"
    if not comp.test_has_ids:
        ids += ", test rows numbered 1..n"
    elif not comp.id_in_train:
        ids += ", in test and the sample only"
    if comp.id_column in comp.date_columns:
        ids += ", a date: also used as a feature"
    if comp.targets:
        writes = (f"the probability of {comp.classes[1]} in each of {listed(comp.targets)}" if comp.writes_proba
                  else f"one value per row in each of {listed(comp.targets)}")
    elif comp.writes_proba:
        writes = (f"one probability per class ({listed(comp.proba_columns)})" if comp.proba_columns
                  else f"the probability of {comp.classes[1]} in {comp.value_columns[0]}")
    else:
        writes = f"one {'label' if comp.classes else 'value'} per row in {comp.value_columns[0]}"
    inputs = f"pixels {comp.image_shape[0]}×{comp.image_shape[1]}" if comp.image_shape else "a table"
    if comp.modality == "images" and comp.image_shape:
        inputs = (f"images, files in {'/ and '.join(comp.image_folders)}/ named by the id"
                  f"{' + ' + comp.image_suffix if comp.image_suffix else ''}, resized to {comp.image_shape[0]}×"
                  f"{comp.image_shape[1]} {'RGB' if comp.image_channels == 3 else 'grey'} (`kc convert --size N`)")
    target = (f"{len(comp.targets)} targets {listed(comp.targets)}, one model each" if comp.targets
              else f"target {comp.target_column}")
    metric = f"{comp.metric}, the {comp.scorer.title}" if comp.targets else comp.metric
    lines = [f"{ids}; {target}: {what}",
             f"submission: {writes}",
             f"inputs: {inputs}; metric: {metric} ({comp.metric_source}); default model: "
             f"{' '.join((comp.default_model, *comp.default_options))}"]
    if comp.modality == "images" and comp.train_file == "labels-from-folders.csv":
        lines.append("labels: the class folders train/<class>/, listed by kc in labels-from-folders.csv")
    from pipeline.ingest.csvfiles import is_row_index

    if only := tuple(c for c in comp.dropped_columns if not is_row_index(c)):
        lines.append(f"left out (in train only, not in test): {listed(only)}")
    if index := tuple(c for c in comp.dropped_columns if is_row_index(c)):
        lines.append(f"left out, row numbers pandas wrote (to_csv's index): {listed(index)}")
    if comp.date_columns:
        lines.append(f"dates, turned into year, month, day, weekday, hour...: {listed(comp.date_columns)}")
    if comp.extra_files:
        lines.append(f"other files, ignored: {listed(comp.extra_files)}")
    return lines


@app.command()
@handled
def fetch(
    ctx: typer.Context,
    slug: Slug = None,
    from_: Annotated[Path | None, typer.Option("--from", help="a zip as Kaggle serves it, or a folder of CSVs",
                                               metavar="PATH")] = None,
    force: Annotated[bool, typer.Option(help="fetch again even if the files are there")] = False,
    metric: Annotated[str | None, typer.Option(help="metric of a competition kc does not know, by kc's name or "
                                                      "Kaggle's (default: accuracy, log-loss or rmse)",
                                                 metavar="NAME")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Get a competition's files: --from a zip or folder, a Kaggle notebook, the Kaggle API, or the bundled copy."""
    from pipeline.ingest.kaggle_api import credentials_warning

    if slug is None:
        raise UsageError("which competition? e.g. `kc fetch titanic`")
    with bytes_progress("extracting") as bar:
        task = bar.add_task("extract", total=None)
        result = api.fetch(slug, from_, force=force, metric=metric, workspace=_ws(ctx, workspace),
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
        what = "the full"
        if result.sample:
            train_rows, test_rows = result.rows()
            what = (f"a SAMPLE ({train_rows:,} train rows, {test_rows:,} test rows: submissions from it are "
                    "practice only and cannot be uploaded) of")
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
    size: Annotated[int | None, typer.Option(help="image files: resize every image to SIZE × SIZE pixels (kept in "
                                                  "competition.json)", metavar="SIZE")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Validate the CSVs and cache model-ready arrays (pixels) or feature tables (tables)."""
    from pipeline.pixels import arrays

    with working("converting"):
        result = api.convert(slug, images=images, force=force, size=size, workspace=_ws(ctx, workspace))
    comp, data = result.competition, result.data
    if isinstance(data, arrays.PixelArrays):
        how = "loaded from cache" if data.from_cache else "converted"
        out.print(f"{comp.slug}: {how} in {result.seconds:.2f}s: train {data.train_images.shape} uint8 + labels, "
                  f"test {data.test_images.shape} uint8 -> {result.folder}")
        if data.top < 255:
            out.print(f"pixels: train's run 0-{data.top}; kc stretched them and test's to 0-255 "
                      f"(x {255 / data.top:.4g})")
        if data.clipped:
            typer.echo(f"WARNING: {data.clipped:.2%} of test's pixels are brighter than train's brightest "
                       f"({data.top}) and became 255: test images are brighter than any kc learnt from", err=True)
        if result.png_folder is not None:
            out.print(f"PNGs: {result.pngs_written:,} written in {result.png_seconds:.1f}s (existing kept) -> "
                      f"{result.png_folder}")
        return
    how = "loaded from cache" if data.from_cache else "converted"
    out.print(f"{comp.slug}: {how} in {result.seconds:.2f}s: {len(data.X):,} train and {len(data.X_test):,} test "
              f"rows, {data.X.shape[1]} features ({data.features['builder']} builder) -> {result.folder}")
    for what, columns in data.features.get("report", {}).items():
        if columns:
            out.print(f"  {what}: {', '.join(map(str, columns))}")
    if "report" not in data.features:
        out.print("features: " + ", ".join(data.feature_names))


@app.command()
@handled
def show(
    ctx: typer.Context,
    slug: Slug = None,
    label: Annotated[str | None, typer.Option(help="only images with this label")] = None,
    n: Annotated[int, typer.Option("-n", help="how many digits", min=1, max=400)] = 64,
    seed: Annotated[int, typer.Option(help="which random digits")] = 0,
    out_path: Annotated[Path | None, typer.Option("--out", help="PNG to write", metavar="FILE")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write a contact sheet of training images with their labels, and print its path."""
    out.print(str(api.show(slug, label=label, n=n, seed=seed, out=out_path, workspace=_ws(ctx, workspace))))


@app.command()
@handled
def explore(ctx: typer.Context, slug: Slug = None, workspace: WorkspaceOpt = None) -> None:
    """Look at the data before modelling: target balance, missing values, what relates to the target, dates."""
    with working("exploring"):
        found = api.explore(slug, workspace=_ws(ctx, workspace))
    for line in found.lines():
        out.print(line)


@app.command()
@handled
def explain(
    ctx: typer.Context,
    slug: Slug = None,
    run_id: Annotated[str | None, typer.Option("--run", help="the run to explain (default: the best)")] = None,
    repeats: Annotated[int, typer.Option(min=1, max=20, help="shuffles per column (tables)")] = 3,
    seed: Seed = 0,
    workspace: WorkspaceOpt = None,
) -> None:
    """What a run learned, on its held-out rows: permutation importance, or each class's accuracy and top losses."""
    with working("explaining"):
        found = api.explain(slug, run_id, repeats=repeats, seed=seed, workspace=_ws(ctx, workspace))
    out.print(f"run {found.run.run_id} ({found.run.model}), judged on its held-out rows")
    if found.importance:
        metric = api.competition(found.run.folder.parent.parent.name, _ws(ctx, workspace)).scorer
        unit, times = (" points", 100) if metric.percent else ("", 1)
        change = "lost" if metric.higher_is_better else "gained"
        out.print(f"{metric.title} on them, unshuffled: {metric.format(found.baseline)}")
        out.print(f"{'column':<28} {metric.title} {change} when shuffled (mean ± spread over {repeats} shuffles)")
        for column, (mean, spread) in list(found.importance.items())[:15]:
            out.print(f"{column[:28]:<28} {mean * times:+.4f}{unit} ± {spread * times:.4f}")
        if len(found.importance) > 15:
            drawn = min(len(found.importance), 40)
            out.print(f"... {drawn - 15} more in the picture" + (f" ({len(found.importance) - drawn} more, each "
                      "below those, not drawn)" if len(found.importance) > drawn else ""))
    for label, share in found.class_accuracy.items():
        out.print(f"class {label}: {share:.2%} right of {found.class_counts[label]:,} held-out images")
    if found.picture is not None:
        out.print(str(found.picture))


@app.command("lr-find")
@handled
def lr_find(ctx: typer.Context, slug: Slug = None, model: ModelOpt = None, seed: Seed = 0,
            workspace: WorkspaceOpt = None) -> None:
    """fastai's learning-rate finder for cnn or tabular: the loss at each rate, drawn, and the rate to try."""
    with working("finding a learning rate"):
        found = api.lr_find(slug, model, seed=seed, workspace=_ws(ctx, workspace))
    out.print(f"{found.model}: fastai suggests lr {found.suggested:.2e} (the valley of the loss curve, on "
              f"{found.rows:,} training rows)")
    out.print(f"try it: kc train {found.picture.parent.parent.name} --model {found.model} --lr {found.suggested:.2g}")
    out.print(str(found.picture))


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

    ws = _ws(ctx, workspace)
    comp = api.competition(slug, ws)
    params: dict[str, Any] = _parse_params(param or [])
    _more_threads_than_cores(threads)
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
    _forecast_warning(comp, ws)
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


def _forecast_warning(comp: competitions.Competition, ws: Workspace) -> None:
    """Warn when test's dates all come after train's, so that random folds flatter a forecast."""
    from pipeline.overview import forecast_columns, forecast_note

    if (note := forecast_note(forecast_columns(comp, ws))) is not None:
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

    ws = _ws(ctx, workspace)
    display = TrainDisplay(epochs=None)

    def starting(name: str, i: int, n: int) -> None:
        display.stage(f"model {i + 1}/{n}: {name}", None)
        display.model_name = name  # "tabular fold 1/5: valid_loss ... after 30 epochs", not "fold 1/5: ..."

    _more_threads_than_cores(threads)
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
        _forecast_warning(comp, ws)
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
    for name in api.available_models(slug, _ws(ctx, workspace)):
        info = MODELS[name]
        table.add_row(name, ", ".join(info.tasks), ", ".join(info.modalities), info.description)
    show_table(table)


@app.command()
@handled
def runs(ctx: typer.Context, slug: Slug = None, workspace: WorkspaceOpt = None) -> None:
    """List the competition's runs, best validation score first (by its metric)."""
    from pipeline.training import listing

    ws = _ws(ctx, workspace)
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
    for again, first in listing.repeats(list(found), comp).items():
        out.print(f"{again} repeats {first} (same model, options, folds, seed and data): one result, not two")


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
    ws = _ws(ctx, workspace)
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
    ws = _ws(ctx, workspace)
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
    ws = _ws(ctx, workspace)
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
    ws = _ws(ctx, workspace)
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
    path = api.report(slug, out=out_path, workspace=_ws(ctx, workspace)).resolve()
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
    for r in api.predict_images(list(paths), run, out_path, _ws(ctx, workspace)):
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
        result = run_demo(_ws(ctx, workspace), watch)
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
    ws = _ws(ctx, workspace)
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
        _more_threads_than_cores(threads)
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


for _info in app.registered_commands:  # whole summaries in `kc --help` (click cuts them at ~45 characters)
    _info.short_help = _info.short_help or (_info.callback.__doc__ or "").strip().splitlines()[0]


def main() -> None:
    """Console-script entry point."""
    app()
