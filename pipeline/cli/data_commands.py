"""kc's commands for the data: fetch, convert, show, explore, explain, lr-find."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline import api
from pipeline.cli.common import (
    Seed,
    Slug,
    WorkspaceOpt,
    app,
    handled,
    workspace_of,
)
from pipeline.cli.live import bytes_progress, out, working
from pipeline.core import competitions, metrics
from pipeline.core.errors import UsageError


def _describe(comp: competitions.Competition, folder: Path) -> None:
    """Print an inferred description in a few lines."""
    out.print(f"kc described {comp.slug} from its files -> {folder / competitions.DESCRIPTION}")
    for line in describe_lines(comp):
        out.print("  " + line)
    other = next((name for name in metrics.fitting(comp.task, bool(comp.targets)) if name != comp.metric
                  and not (metrics.METRICS[name].log_target or metrics.METRICS[name].log1p_target)  # any values
                  and (metrics.METRICS[name].needs == "proba") == comp.writes_proba), comp.metric)
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
    if comp.value_floor is not None:
        lines.append(f"predictions kept at {comp.value_floor:g} or above, as train's targets are (value_floor; null "
                     "writes what the model gives)")
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
        result = api.fetch(slug, from_, force=force, metric=metric, workspace=workspace_of(ctx, workspace),
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
        result = api.convert(slug, images=images, force=force, size=size, workspace=workspace_of(ctx, workspace))
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
    out.print(str(api.show(slug, label=label, n=n, seed=seed, out=out_path, workspace=workspace_of(ctx, workspace))))


@app.command()
@handled
def explore(ctx: typer.Context, slug: Slug = None, workspace: WorkspaceOpt = None) -> None:
    """Look at the data before modelling: target balance, missing values, what relates to the target, dates."""
    with working("exploring"):
        found = api.explore(slug, workspace=workspace_of(ctx, workspace))
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
        found = api.explain(slug, run_id, repeats=repeats, seed=seed, workspace=workspace_of(ctx, workspace))
    out.print(f"run {found.run.run_id} ({found.run.model}), judged on its held-out rows")
    if found.importance:
        metric = api.competition(found.run.folder.parent.parent.name, workspace_of(ctx, workspace)).scorer
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


LrModel = Annotated[str | None, typer.Option("--model", "-m", help="cnn or tabular (default: cnn for images, tabular "
                                                                   "for tables)", metavar="NAME")]


@app.command("lr-find")
@handled
def lr_find(ctx: typer.Context, slug: Slug = None, model: LrModel = None, seed: Seed = 0,
            workspace: WorkspaceOpt = None) -> None:
    """fastai's learning-rate finder for cnn or tabular: the loss at each rate, drawn, and the rate to try."""
    with working("finding a learning rate"):
        found = api.lr_find(slug, model, seed=seed, workspace=workspace_of(ctx, workspace))
    out.print(f"{found.model}: fastai suggests lr {found.suggested:.2e} (the valley of the loss curve, on "
              f"{found.rows:,} training rows)")
    out.print(f"try it: kc train {found.picture.parent.parent.name} --model {found.model} --lr {found.suggested:.2g}")
    out.print(str(found.picture))
