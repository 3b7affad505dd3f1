"""kc as a library: the CLI's verbs as functions that return typed values, raise KcError and print nothing.

`import pipeline as kc` gives these names; `kc.train("titanic", folds=5).score` is the notebook way of working.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import notebook
from pipeline.core import competitions
from pipeline.core.competitions import Competition
from pipeline.core.errors import KaggleError, UsageError
from pipeline.core.workspace import Workspace

if TYPE_CHECKING:
    from pipeline.core.epochs import Epoch
    from pipeline.handwriting import Prediction
    from pipeline.ingest.sources import FetchResult
    from pipeline.interpretation import Explanation
    from pipeline.models.base import EpochCallback
    from pipeline.overview import Overview
    from pipeline.submitting.ensembles import Ensemble
    from pipeline.submitting.ledger import LogEntry
    from pipeline.training.comparison import Comparison
    from pipeline.training.learning_rates import LrFinding
    from pipeline.training.records import Damaged, Run
    from pipeline.tuning.studies import TrialResult, TuneResult

WorkspaceLike = Workspace | str | Path | None
CompetitionLike = Competition | str | None  # a description (the CLI resolves it once), a slug, or None: the only one


def _space(root: WorkspaceLike = None) -> Workspace:
    """The workspace at `root`, else $KC_WORKSPACE, else the current directory."""
    return root if isinstance(root, Workspace) else Workspace.resolve(root)


def competition(slug: CompetitionLike = None, workspace: WorkspaceLike = None) -> Competition:
    """A competition's description: the one given, the one named, or the only one fetched into the workspace."""
    if isinstance(slug, Competition):
        return slug
    space = _space(workspace)
    return competitions.get(slug or space.only_competition(), space.root)


def fetch(slug: str, source: str | Path | None = None, *, force: bool = False, metric: str | None = None,
          workspace: WorkspaceLike = None, progress: Callable[[int, int], None] | None = None) -> FetchResult:
    """Get a competition's files: from `source` (a zip or folder), a Kaggle notebook, the Kaggle API, or kc's copy."""
    from pipeline.ingest.sources import fetch as do_fetch

    return do_fetch(slug, _space(workspace), Path(source) if source is not None else None, force, progress=progress,
                    metric=metric)


@dataclass(frozen=True)
class Converted:
    """What `convert` cached (pixel arrays or a feature table), how long it took, and any PNGs written."""

    competition: Competition
    data: Any  # arrays.PixelArrays or tables.TableData
    seconds: float
    folder: Path
    png_folder: Path | None = None
    pngs_written: int = 0
    png_seconds: float = 0.0


def convert(slug: CompetitionLike = None, *, images: bool = False, force: bool = False, size: int | None = None,
            workspace: WorkspaceLike = None) -> Converted:
    """Validate the CSVs and cache model-ready arrays or feature tables; `images` also writes PNGs (pixels only);
    `size` resizes an image-file competition's images to size × size (saved in competition.json)."""
    from pipeline.core import dataset
    from pipeline.pixels import arrays

    space = _space(workspace)
    comp = competition(slug, space)
    if images and comp.image_shape is None:
        raise UsageError(f"--images applies to pixel competitions; {comp.slug} is {comp.modality}")
    if size is not None:
        from pipeline.pixels import files

        comp = files.resized(comp, space, size)
    t0 = time.perf_counter()
    data = dataset.convert(comp, space, force)
    result = Converted(comp, data, time.perf_counter() - t0, space.cache_dir(comp.slug))
    if not images:
        return result
    t0 = time.perf_counter()
    root, written = arrays.write_pngs(comp, space, data, force)
    return Converted(comp, data, result.seconds, result.folder, root, written, time.perf_counter() - t0)


def show(slug: CompetitionLike = None, *, label: str | None = None, n: int = 64, seed: int = 0,
         out: str | Path | None = None, workspace: WorkspaceLike = None) -> Path:
    """Draw a contact sheet of training images with their labels; return the PNG's path."""
    from pipeline.pixels.arrays import sheet

    space = _space(workspace)
    return sheet(competition(slug, space), space, label, n, seed, Path(out) if out is not None else None)


def explore(slug: str | None = None, workspace: WorkspaceLike = None) -> Overview:
    """A first look at the data: target balance, missing values, relation to the target, train against test, dates."""
    from pipeline.overview import explore as look

    space = _space(workspace)
    return look(competition(slug, space), space)


def explain(slug: str | None = None, run_id: str | None = None, *, repeats: int = 3, seed: int = 0,
            workspace: WorkspaceLike = None) -> Explanation:
    """What a run learned, judged on its held-out rows: permutation importance (tables); for images, the accuracy of
    each class and the most confidently wrong ones."""
    from pipeline.interpretation import explain as judge

    space = _space(workspace)
    return judge(competition(slug, space), space, run_id, repeats, seed)


def lr_find(slug: CompetitionLike = None, model: str | None = None, *, seed: int = 0,
            workspace: WorkspaceLike = None) -> LrFinding:
    """fastai's learning-rate finder for a fastai model (cnn or tabular; default: the competition's, if one), with
    its plot: the loss at each rate and the rate it suggests for `--lr`."""
    from pipeline.training.learning_rates import find

    space = _space(workspace)
    comp = competition(slug, space)
    return find(comp, space, model or ("cnn" if comp.modality != "tabular" else "tabular"), seed)


def available_models(slug: str | None = None, workspace: WorkspaceLike = None) -> list[str]:
    """kc's model names; with a slug, only those that fit its task and inputs."""
    from pipeline.models import MODELS, fitting

    return list(MODELS) if slug is None else fitting(competitions.get(slug, _space(workspace).root))


def train(slug: CompetitionLike = None, model: str | None = None, *, folds: int | None = None, full: bool = False,
          epochs: int | None = None, lr: float | None = None, bs: int | None = None, valid_pct: float = 0.1,
          seed: int = 0, device: str = "auto", features: str | None = None, params: dict[str, Any] | None = None,
          tensorboard: bool = False, threads: int = 0, time_limit: float = 0.0, workspace: WorkspaceLike = None,
          on_epoch: EpochCallback | None = None, on_stage: Callable[[str, int | None], None] | None = None,
          progress: bool | None = None) -> Run:
    """Fit a model (default: the competition's own), score it on a split or out-of-fold, and record the run.

    `folds` None: 5 folds for a table under 5,000 rows or images under 2,000 (fewer when a class has fewer rows;
    `training.honesty.auto_folds`), else one split. `progress` (default: in Jupyter) shows a
    fastprogress bar. `threads`: threads every model may use (0 = the idle cores); `time_limit`: seconds the run may
    take (lgbm, catboost, blend, cnn, tabular)."""
    from pipeline.training.records import TrainConfig
    from pipeline.training.trainer import train as do_train

    space = _space(workspace)
    comp = competition(slug, space)
    options = dict(params or {})
    for key, value in (("epochs", epochs), ("lr", lr), ("bs", bs)):
        if value is not None:
            options[key] = value
    cfg = TrainConfig(model=(model or comp.default_model).lower(), params=options, valid_pct=valid_pct, seed=seed,
                      folds=folds, full=full, device=device, features=features, tensorboard=tensorboard,
                      threads=threads, time_limit=time_limit)
    if not (progress if progress is not None else notebook.in_notebook()):
        return do_train(comp, space, cfg, on_epoch=on_epoch, on_stage=on_stage)
    with notebook.progress_bar(epochs or _int(options.get("epochs"))) as bar:
        def epoch(record: Epoch) -> None:
            bar.epoch(record)
            if on_epoch:
                on_epoch(record)

        def stage(text: str, epochs: int | None = None) -> None:
            bar.stage(text)
            if on_stage:
                on_stage(text, epochs)

        return do_train(comp, space, cfg, on_epoch=epoch, on_stage=stage)


def compare(slug: str | None = None, models: list[str] | None = None, *, folds: int | None = None, seed: int = 0,
            threads: int = 0, workspace: WorkspaceLike = None,
            on_model: Callable[[str, int, int], None] | None = None, on_epoch: EpochCallback | None = None,
            on_stage: Callable[[str, int | None], None] | None = None) -> Comparison:
    """Every model that fits (or those named), out-of-fold on the same folds (5, or fewer when the rarest class has
    fewer rows), best first; each one a recorded run."""
    from pipeline.training.comparison import compare as do_compare

    space = _space(workspace)
    return do_compare(competition(slug, space), space, models, folds, seed, threads, on_model, on_epoch, on_stage)


def _int(value: Any) -> int | None:
    return int(value) if str(value).isdigit() else None


class RunList(list):
    """A competition's runs, best first; `.damaged` lists run folders that could not be read."""

    damaged: list[Damaged]

    def _repr_html_(self) -> str:
        return notebook.runs_html(self)


def runs(slug: CompetitionLike = None, workspace: WorkspaceLike = None) -> RunList:
    """The competition's recorded runs, best score first by its metric."""
    from pipeline.training.records import scan

    space = _space(workspace)
    found, damaged = scan(competition(slug, space), space)
    result = RunList(found)
    result.damaged = damaged
    return result


def run(slug: CompetitionLike = None, run_id: str | None = None, workspace: WorkspaceLike = None) -> Run:
    """One recorded run by id (default: the best)."""
    from pipeline.training.records import get_run

    space = _space(workspace)
    return get_run(competition(slug, space), space, run_id)


@dataclass(frozen=True)
class Submission:
    """A written, validated submission; and Kaggle's answer when it was uploaded."""

    path: Path
    entry: LogEntry  # the log line as written
    new: bool  # False: an identical file was already written, so it was not written again
    uploaded: LogEntry | None = None  # the log line after uploading (status, public score)

    def _repr_html_(self) -> str:
        return notebook.submission_html(self)


def submit(slug: CompetitionLike = None, run: Run | str | None = None, *, upload: bool = False,
           message: str | None = None, wait: bool = True, timeout: float = 300.0, workspace: WorkspaceLike = None,
           on_wait: Callable[[str], None] | None = None) -> Submission:
    """Predict the test set with a run (default: the best), write a validated submission, optionally upload it.

    With `upload`, a failed upload raises after the file is written and logged; `submit` then `upload` keeps both.
    """
    from pipeline.submitting import ledger

    space = _space(workspace)
    comp = competition(slug, space)
    written = ledger.predict_run(comp, space, run if isinstance(run, str | None) else run.run_id)
    result = Submission(written.path, written.entry, written.new)
    if not upload:
        return result
    return Submission(written.path, written.entry, written.new, _upload(comp, space, written.path, written.entry,
                                                                        message, wait, timeout, on_wait))


def upload(slug: CompetitionLike, submission: Submission | str | Path, *, message: str | None = None, wait: bool = True,
           timeout: float = 300.0, workspace: WorkspaceLike = None,
           on_wait: Callable[[str], None] | None = None) -> LogEntry:
    """Upload a submission kc wrote (its path or the `submit` result) and, with `wait`, return Kaggle's score."""
    from pipeline.submitting import ledger

    space = _space(workspace)
    comp = competition(slug, space)
    path = Path(submission.path if isinstance(submission, Submission) else submission)
    entry = next((e for e in ledger.read_log(comp, space) if e.file == path.name), None)
    if entry is None or path.resolve().parent != space.submissions_dir(comp.slug).resolve():
        raise UsageError(f"{path} is not a submission kc wrote for {comp.slug}: write one with `kc submit`")
    return _upload(comp, space, path, entry, message, wait, timeout, on_wait)


def _upload(comp: Competition, space: Workspace, path: Path, entry: LogEntry, message: str | None, wait: bool,
            timeout: float, on_wait: Callable[[str], None] | None) -> LogEntry:
    from pipeline.submitting import ledger
    from pipeline.training.trainer import git_commit

    score = f"valid {entry.metric} {entry.valid_score:.4f}" if entry.valid_score is not None else "valid n/a"
    text = message or f"kc {entry.made_from}: {entry.model}, {score}, git {git_commit() or 'none'}"
    done = ledger.upload(comp, space, path, text, wait=wait, timeout=timeout, on_wait=on_wait)
    if done.status == "ERROR":
        raise KaggleError(f"Kaggle could not score {path.name}: {done.error or 'no reason given'}")
    return done


def validate(file: str | Path, *, slug: CompetitionLike = None, workspace: WorkspaceLike = None) -> int:
    """Check a CSV against the competition's submission format; return its row count."""
    from pipeline.submitting.ledger import validate_file

    space = _space(workspace)
    return validate_file(competition(slug, space), space, Path(file))


@dataclass(frozen=True)
class Blended:
    """An ensemble (weights, member scores, blend score) and its submission."""

    ensemble: Ensemble
    submission: Submission


def ensemble(slug: CompetitionLike, run_ids: list[str | Run], method: str = "weighted", *, upload: bool = False,
             message: str | None = None, wait: bool = True, timeout: float = 300.0, workspace: WorkspaceLike = None,
             on_wait: Callable[[str], None] | None = None) -> Blended:
    """Blend runs into one submission, weights chosen on the validation rows they share; optionally upload it."""
    from pipeline.submitting.ensembles import ensemble as do_ensemble

    space = _space(workspace)
    comp = competition(slug, space)
    if isinstance(run_ids, str | Path) or not all(isinstance(r, str) or hasattr(r, "run_id") for r in run_ids):
        raise UsageError("ensemble takes a list of runs or run ids, e.g. kc.ensemble(\"titanic\", [run_a, run_b])")
    ids = [r if isinstance(r, str) else r.run_id for r in run_ids]
    result = do_ensemble(comp, space, ids, method)
    written = result.written
    uploaded = _upload(comp, space, written.path, written.entry, message, wait, timeout, on_wait) if upload else None
    return Blended(result, Submission(written.path, written.entry, written.new, uploaded))


class LogList(list):
    """The submission log, oldest first; `.note` says what could not be refreshed or read, if anything."""

    note: str | None


def submissions(slug: CompetitionLike = None, workspace: WorkspaceLike = None) -> LogList:
    """The submission log, with pending uploads refreshed from Kaggle when credentials allow."""
    from pipeline.submitting import ledger

    space = _space(workspace)
    entries, note = ledger.refresh(competition(slug, space), space)
    result = LogList(entries)
    result.note = note
    return result


def tune(slug: CompetitionLike = None, model: str | None = None, *, trials: int, timeout: float | None = None,
         workers: int = 1, storage: str | None = None, study: str | None = None, valid_pct: float = 0.1,
         seed: int = 0, folds: int | None = None, device: str = "auto", features: str | None = None,
         params: dict[str, Any] | None = None, threads: int = 0, workspace: WorkspaceLike = None,
         on_trial: Callable[[TrialResult], None] | None = None) -> TuneResult:
    """Search a model's options with Optuna; params hold ranges ("1e-3:1e-1:log"), choices ("a|b") or values."""
    from pipeline.training.records import TrainConfig
    from pipeline.tuning import search

    space = _space(workspace)
    comp = competition(slug, space)
    cfg = TrainConfig(model=(model or comp.default_model).lower(), params=dict(params or {}), valid_pct=valid_pct,
                      seed=seed, folds=folds, device=device, features=features, threads=threads)
    return search.tune(comp, space, cfg, trials, timeout, workers, storage, study, on_trial=on_trial)


def study(slug: CompetitionLike = None, model: str | None = None, *, storage: str | None = None,
          name: str | None = None, workspace: WorkspaceLike = None) -> TuneResult:
    """A tuning study's trials, best first, with its PNGs drawn."""
    from pipeline.tuning import studies

    space = _space(workspace)
    return studies.show(competition(slug, space), space, storage, name, model.lower() if model else None)


def predict_images(paths: list[str | Path] | str | Path, run_id: str | None = None, out: str | Path | None = None,
                   workspace: WorkspaceLike = None) -> list[Prediction]:
    """Classify photos of handwritten digits with a digit-recognizer run, drawing what the model saw."""
    from pipeline.handwriting import predict_images as predict

    space = _space(workspace)
    comp = competitions.get("digit-recognizer", space.root)
    files = [paths] if isinstance(paths, str | Path) else paths  # one photo, or several
    return predict(comp, space, [Path(p) for p in files], run_id, Path(out) if out is not None else None)


def report(slug: CompetitionLike = None, *, out: str | Path | None = None, workspace: WorkspaceLike = None) -> Path:
    """Write one self-contained HTML page of the runs, their pictures and the submission log; return its path."""
    from pipeline.reports import write_report

    space = _space(workspace)
    return write_report(competition(slug, space), space, Path(out) if out is not None else None)


if notebook.in_notebook():  # runs, competitions and fetches display as HTML in Jupyter
    notebook.register()
