"""`kc train`: fit on a split or K folds (refit with --full), score by the competition's metric, record the run."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np

import pipeline
from pipeline.core import epochs, threads, tracking
from pipeline.core.competitions import Competition
from pipeline.core.dataset import Dataset, load_dataset, rows_except, take_rows
from pipeline.core.epochs import Epoch
from pipeline.core.errors import UsageError
from pipeline.core.workspace import Workspace
from pipeline.models import model_class
from pipeline.models.base import EpochCallback, Model, check_inputs, for_inputs
from pipeline.training import prepared
from pipeline.training.honesty import auto_folds, most_folds
from pipeline.training.records import (
    TRAIN_ROWS,
    Run,
    RunMetrics,
    TrainConfig,
    runs_folder,
)
from pipeline.training.scoring import model_target, outputs, predictions, score
from pipeline.training.splits import held_out

Stage = Callable[[str, int | None], None]  # (what starts now, the epochs a fit starting now trains, if epochal)


def build_model(comp: Competition, cfg: TrainConfig, time_limit: float = 0.0) -> Model:
    """The configured model, with the run's seed, device, threads and this fit's seconds filled in where taken."""
    cls = model_class(cfg.model, comp)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    params = dict(cfg.params)
    check_inputs(cls, params, comp.modality)
    if "seed" in names:
        params.setdefault("seed", cfg.seed)
    if "threads" in names:
        params.setdefault("threads", cfg.threads)
    if "device" in names:
        params.setdefault("device", cfg.device)
    elif cfg.device == "cuda":
        raise UsageError(f"--device cuda: model '{cfg.model}' runs on the CPU only")
    if cfg.time_limit and "time_limit" not in names:
        raise UsageError(f"--time-limit: model '{cfg.model}' cannot keep to a time budget; use lgbm, catboost, "
                         "blend, cnn or tabular, or train without --time-limit")
    if time_limit:
        params["time_limit"] = round(time_limit, 3)
    model = cls.from_params(params)
    model.check_options()
    return model


# seconds a run keeps back from --time-limit for predicting, drawing and writing its folder, beyond RESERVE_SHARE of it:
# after a 54,000-round Titanic fit on a Zen 1, predicting took 1.1 s, saving the booster 2.4 s, the pictures 1.6 s
RESERVE_SECONDS, RESERVE_SHARE = 3.0, 0.1


def fit_budget(deadline: float | None, fits_left: int, fold: tuple[int, int] = (0, 1)) -> float:
    """Seconds the next fit may take: an equal share of what is left before the deadline, less the reserve.
    `fold`: (index, count) of the fit among the run's folds, for the message when none is left."""
    if deadline is None:
        return 0.0
    left = deadline - time.monotonic()
    if left <= 0:
        k, count = fold
        if k:
            raise UsageError(f"--time-limit: the time ran out before fold {k + 1} of {count} began (the first {k} "
                             "took it all); give more seconds, or fewer --folds")
        raise UsageError("--time-limit: the time ran out before training began (starting up took it all: loading the "
                         "data and the model's libraries, and the reserve for saving the run); give more seconds")
    return max(left / fits_left, 0.01)


def git_commit() -> str | None:
    """kc's short git commit, when kc runs from a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(pipeline.__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def chosen_epochs(models: list[Model]) -> int | None:
    """The epoch count validation chose: the median best-valid-loss epoch over the models (None if not epochal)."""
    best = [b.epoch for m in models if (b := epochs.best(m.history_)) is not None]
    return max(1, round(float(np.median(best)))) if best else None


@dataclasses.dataclass
class Fitted:
    """What validation produced: the fitted models, their outputs on the validation rows, and how it was scored."""

    models: list[Model]
    train_rows: list[np.ndarray]  # the rows each model was fitted on
    valid_idx: np.ndarray  # rows scored: the held-out split, or every row (out-of-fold)
    out: np.ndarray  # outputs for those rows
    fold: np.ndarray  # each scored row's fold (all 0 for a split)
    fold_scores: list[float]
    fit_seconds: float
    predict_seconds: float


@contextmanager
def _events(events: Path | None, name: str, model: Model,
            on_epoch: EpochCallback | None) -> Iterator[EpochCallback | None]:
    """One fit's epoch callback; with `events`, TensorBoard files go to events/name (fastai's callback, or ours)."""
    if events is None:
        yield on_epoch
        return
    with tracking.logging_to(events / name):
        if model.fastai:
            yield on_epoch
            return
        writer = tracking.EpochWriter(events / name)

        def both(record: Epoch) -> None:
            writer(record)
            if on_epoch:
                on_epoch(record)

        try:
            yield both
        finally:
            writer.close()


def validate(comp: Competition, cfg: TrainConfig, X: np.ndarray, y: np.ndarray, on_epoch: EpochCallback | None,
             stage: Stage, events: Path | None = None,
             for_fit: Callable[[np.ndarray], np.ndarray] | None = None, deadline: float | None = None,
             parts: list[np.ndarray] | None = None) -> Fitted:
    """Fit on a split (one model) or on K folds (K models, each scored on the fold it did not see)."""
    # for_fit(train_rows): every row's inputs for a fit on those rows, when some columns come from labels;
    # parts: the rows each fit holds out, when several targets share them
    parts = held_out(comp, cfg, y) if parts is None else parts
    target = model_target(comp, y)
    models, rows, fit_s, predict_s = [], [], 0.0, 0.0
    out: np.ndarray | None = None
    fold = np.zeros(len(y), np.int64)
    scores = []
    for k, part in enumerate(parts):
        rest = rows_except(len(y), part)
        what = f"fold {k + 1}/{len(parts)}: " if cfg.folds else ""
        model = build_model(comp, cfg, fit_budget(deadline, len(parts) - k + cfg.full, (k, len(parts))))
        note = model.plan()
        stage(f"{what}training {cfg.model} on {len(rest):,} rows" + (f": {note}" if note else ""),
              model.params().get("epochs"))
        t0 = time.perf_counter()
        Xk = X if for_fit is None else for_fit(rest)  # label columns from this fit's training rows only
        with _events(events, f"fold{k + 1}" if cfg.folds else "split", model, on_epoch) as watch:
            # copies handed over, not named here: a model done with them (lgbm, once binned) lets them go
            model.fit(take_rows(Xk, rest), target[rest], take_rows(Xk, part), target[part], on_epoch=watch)
        fit_s += time.perf_counter() - t0
        # Ctrl-C in a fold stops the whole run; before the first epoch ended there is no epoch worth keeping
        if model.interrupted_ and (cfg.folds or not model.history_):
            raise KeyboardInterrupt
        t0 = time.perf_counter()
        # read again rather than held through the fit: 10 MB more at a million rows' peak, for 23 ms of reading (Zen 1)
        part_out = outputs(comp, model, take_rows(Xk, part))
        predict_s += time.perf_counter() - t0
        if out is None:
            out = np.zeros((len(y), *part_out.shape[1:]), part_out.dtype)
        out[part], fold[part] = part_out, k
        scores.append(score(comp, y[part], part_out))
        models.append(model)
        rows.append(rest)
    assert out is not None
    scored = np.sort(np.concatenate(parts))
    return Fitted(models, rows, scored, out[scored], fold[scored], scores if cfg.folds else [], fit_s, predict_s)


def _new_run_id(runs: Path, model: str, n: int = 1) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{model}" if n == 1 else f"{stamp}-{model}-{n}"
    return run_id if not (runs / run_id).exists() else _new_run_id(runs, model, n + 1)


def _publish(tmp: Path, runs: Path, model: str) -> str:
    """Rename the finished temporary folder to a fresh run id; a name taken meanwhile moves on to the next."""
    for _ in range(100):
        run_id = _new_run_id(runs, model)
        try:
            tmp.rename(runs / run_id)
            return run_id
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    raise OSError(errno.EEXIST, "no free run id", str(runs))


def clean_leftovers(runs: Path) -> None:
    """Remove temporary run folders of kc processes that no longer run (killed mid-write)."""
    for tmp in runs.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 3)[-3] if tmp.name.count(".") >= 3 else ""
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def alive(pid: int) -> bool:
    """Whether a process of this machine still runs (kc processes leave their pid on work in progress)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def train(comp: Competition, ws: Workspace, cfg: TrainConfig, on_epoch: EpochCallback | None = None,
          on_stage: Stage | None = None, data: Dataset | None = None, predict_test: bool = True) -> Run:
    """Fit, score on a split or out-of-fold, optionally refit on all rows, and write the run folder (atomically);
    then, with `predict_test`, predict the test rows and keep them with the run for `kc submit`."""
    started = time.monotonic()
    stage = on_stage or (lambda _text, _epochs: None)
    if cfg.time_limit and "time_limit" in cfg.params:  # one would silently override the other
        raise UsageError("-p time_limit and --time-limit: give one (--time-limit is the whole run's seconds, shared "
                         "among its fits; -p time_limit each fit's own)")
    cfg = dataclasses.replace(cfg, params={**comp.options_for(cfg.model), **cfg.params}).check()  # the one merge
    asked = cfg.threads  # 0: set below from the table's size and the cores idle (the run records the number used)
    model = build_model(comp, cfg)  # fail on bad options before any work
    if "threads" in cfg.params:  # the run records the count used: -p threads=64 on 2 cores trains on 2
        cfg = dataclasses.replace(cfg, params={**cfg.params, "threads": model.params()["threads"]})
    if cfg.tensorboard:
        tracking.check_available()
        if "epochs" not in model.params():
            raise UsageError(f"--tensorboard: model '{cfg.model}' trains in one go, with no epochs to log; "
                             "use it with linear, cnn or tabular")
    stage("loading data", None)
    data = data or load_dataset(comp, ws, cfg.features)
    # the files as loaded: the test outputs are kept only if they are the same after training
    before = prepared.data_key(comp, ws, data) if predict_test else ""
    if cfg.folds is None:  # not given: out-of-fold on small tables (see honesty.auto_folds)
        cfg = dataclasses.replace(cfg, folds=auto_folds(comp, data.y))
    X = data.train_inputs(model.scaled)
    # on a small table one thread wastes nothing; else the idle cores (or $OMP_NUM_THREADS); asked: at most the cores
    small = not asked and X.size < threads.SMALL_TABLE
    cfg = dataclasses.replace(cfg, threads=1 if small else threads.resolve(asked))
    events = None
    if cfg.features is None and isinstance(data.features.get("builder"), str):  # record what "default" meant
        cfg = dataclasses.replace(cfg, features=data.features["builder"])
    if cfg.tensorboard:  # events are written while training, beside the runs, and moved into the run at the end
        runs = runs_folder(comp, ws)
        runs.mkdir(parents=True, exist_ok=True)
        events = Path(tempfile.mkdtemp(prefix=f".tensorboard.{os.getpid()}.", suffix=".tmp", dir=runs))
    # fits end early enough to leave time for predicting, drawing and writing the run folder
    deadline = started + cfg.time_limit * (1 - RESERVE_SHARE) - RESERVE_SECONDS if cfg.time_limit else None
    try:
        with threads.limited(cfg.threads):
            run, models = _train(comp, ws, cfg, X, data, on_epoch, stage, events, deadline)
            if predict_test:
                prepared.save(comp, ws, run, data, stage, started + cfg.time_limit if cfg.time_limit else None,
                              before, models)
            return run
    finally:
        if events is not None:
            shutil.rmtree(events, ignore_errors=True)


def refit(comp: Competition, cfg: TrainConfig, X: np.ndarray, y: np.ndarray, fitted: Fitted,
          on_epoch: EpochCallback | None, stage: Stage, events: Path | None,
          deadline: float | None) -> tuple[Model | None, int | None]:
    """With --full, (a model refitted on all rows with the epochs validation chose, those epochs); else (None, None)."""
    full, full_epochs = None, None
    if cfg.full and deadline is not None and time.monotonic() >= deadline:  # the folds used the time (a machine
        stage("no time left to refit: submissions use the validated model", None)  # that slept): keep them
        return full, full_epochs
    if cfg.full and not fitted.models[0].interrupted_:
        params = dict(cfg.params)
        full_epochs = chosen_epochs(fitted.models)
        if full_epochs is not None and "epochs" in fitted.models[0].params():
            params["epochs"] = full_epochs
        stage(f"refitting {cfg.model} on all {len(y):,} rows" + (f" for {full_epochs} epochs" if full_epochs else ""),
              full_epochs)
        t0 = time.perf_counter()
        full = build_model(comp, dataclasses.replace(cfg, params=params), fit_budget(deadline, 1))
        with _events(events, "full", full, on_epoch) as watch:
            full.fit(X, model_target(comp, y), on_epoch=watch)
        fitted.fit_seconds += time.perf_counter() - t0
        if full.interrupted_ or full.out_of_time_:  # Ctrl-C or the deadline in the refit: a half-trained model
            stage("refit stopped: submissions use the validated model", None)  # must not submit
            full = None
    return full, full_epochs


def save_models(folder: Path, submits_with: str, fitted: Fitted, full: Model | None, rows: int) -> None:
    """The models a run submits with, each beside the rows it was fitted on: K fold folders, or one model."""
    if submits_with == "fold-mean":
        for k, (m, index) in enumerate(zip(fitted.models, fitted.train_rows, strict=True)):
            (folder / f"fold{k}").mkdir()
            m.save(folder / f"fold{k}")
            np.save(folder / f"fold{k}" / TRAIN_ROWS, index)
    else:
        (full or fitted.models[0]).save(folder)
        np.save(folder / TRAIN_ROWS, np.arange(rows) if full else fitted.train_rows[0])


def _train(comp: Competition, ws: Workspace, cfg: TrainConfig, X: np.ndarray, data: Dataset,
           on_epoch: EpochCallback | None, stage: Stage, events: Path | None,
           deadline: float | None) -> tuple[Run, list[Model] | None]:
    """The recorded run, and the models it submits with while they are in memory (None: load them)."""
    if comp.targets:  # one model (or K) per target column
        from pipeline.training.targets import train_targets

        return train_targets(comp, ws, cfg, X, data, on_epoch, stage, events, deadline), None
    y = data.y
    for_fit = partial(data.for_fit, X) if data.fit_columns is not None else None
    fitted = validate(comp, cfg, X, y, on_epoch, stage, events, for_fit, deadline)
    full, full_epochs = refit(comp, cfg, X, y, fitted, on_epoch, stage, events, deadline)
    first = fitted.models[0]
    stage("saving the run and drawing its pictures", None)
    metrics = RunMetrics(
        metric=comp.metric, score=score(comp, y[fitted.valid_idx], fitted.out), valid_rows=len(fitted.valid_idx),
        train_rows=len(y) - (len(fitted.valid_idx) if not cfg.folds else len(y) // cfg.folds),
        fit_seconds=round(fitted.fit_seconds, 3), predict_seconds=round(fitted.predict_seconds, 3),
        scored_on="oof" if cfg.folds else "split", interrupted=bool(first.interrupted_), history=first.history_,
        out_of_time=any(m.out_of_time_ for m in fitted.models),
        fold_scores=fitted.fold_scores, compute=first.compute_, full_epochs=full_epochs if full is not None else None,
        submits_with="full" if full is not None else ("fold-mean" if cfg.folds else "model"),
        data_fingerprint=data.fingerprint, learning_key=comp.learning_key, kc_version=pipeline.__version__,
        git_commit=git_commit(),
        created=datetime.now().isoformat(timespec="seconds"), most_folds=None if cfg.folds else most_folds(comp, y))
    cfg = dataclasses.replace(cfg, params=for_inputs(type(first), first.params(), comp.modality))
    run = _record(comp, ws, cfg, metrics, fitted, full, data, events)
    return run, [full] if full is not None else fitted.models if cfg.folds else fitted.models[:1]


def _record(comp: Competition, ws: Workspace, cfg: TrainConfig, metrics: RunMetrics, fitted: Fitted,
            full: Model | None, data: Dataset, events: Path | None = None) -> Run:
    """Write the run folder beside the others, all or nothing."""
    from pipeline.training import plots

    runs, tmp = open_run(comp, ws, cfg)
    try:
        save_models(tmp, metrics.submits_with, fitted, full, len(data.y))
        np.savez(tmp / "valid.npz", index=fitted.valid_idx, outputs=fitted.out, fold=fitted.fold)
        how = "OOF" if metrics.scored_on == "oof" else "valid"
        title = f"{comp.slug} · {cfg.model} · {how} {comp.scorer.title} {comp.scorer.format(metrics.score)}"
        if metrics.history:
            plots.learning_curves([m.history_ for m in fitted.models] or [metrics.history],
                                  tmp / "learning_curves.png", title,
                                  [m.interrupted_ or m.out_of_time_ for m in fitted.models] or [metrics.stopped_early])
        y, pred = data.y[fitted.valid_idx], predictions(comp, fitted.out)
        if comp.is_classification:
            names = np.asarray(comp.display_classes)
            plots.confusion_matrix(names[y], names[pred], names, tmp / "confusion_matrix.png", title)
        else:
            plots.predicted_vs_true(y, pred, tmp / "predicted_vs_true.png", title, log=comp.scorer.log_target)
        return close_run(runs, tmp, cfg, metrics, data, events)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def open_run(comp: Competition, ws: Workspace, cfg: TrainConfig) -> tuple[Path, Path]:
    """(the runs folder, a new hidden folder in it) where a run is written before `close_run` publishes it."""
    runs = runs_folder(comp, ws)
    runs.mkdir(parents=True, exist_ok=True)
    clean_leftovers(runs)
    return runs, Path(tempfile.mkdtemp(prefix=f".{cfg.model}.{os.getpid()}.", suffix=".tmp", dir=runs))


def close_run(runs: Path, tmp: Path, cfg: TrainConfig, metrics: RunMetrics, data: Dataset,
              events: Path | None) -> Run:
    """Write what every run records (features, config, metrics, TensorBoard events) into `tmp`, and publish it."""
    (tmp / "features.json").write_text(json.dumps(data.features, indent=2))
    (tmp / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    (tmp / "metrics.json").write_text(json.dumps(metrics.to_json(), indent=2))
    if events is not None:
        shutil.move(events, tmp / "tensorboard")
    run_id = _publish(tmp, runs, cfg.model)
    return Run(run_id, runs / run_id, cfg, metrics)
