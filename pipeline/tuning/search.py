"""`kc tune`: hyperparameter search with Optuna; each trial is an ordinary kc run, the study lives in an Optuna storage.

kc writes no search and no scheduler: Optuna's TPE sampler proposes options, its pruner stops hopeless trials from
the per-epoch figures kc's models already report through `on_epoch`, and its storages (an SQLite file, a journal
file on shared disk, PostgreSQL, MySQL) let processes on many machines work on one study. The trial budget is the
study's: Optuna's MaxTrialsCallback stops each worker once the study holds N trials, and since trial numbers are
handed out by the storage one by one, a trial numbered N or more (two workers finishing at the same instant) closes
at once without training. So exactly N trials train, whichever worker runs them.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pipeline.core import competitions, threads
from pipeline.core.competitions import Competition
from pipeline.core.epochs import Epoch
from pipeline.core.errors import KcError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.models import model_class
from pipeline.training.honesty import auto_folds
from pipeline.training.records import TrainConfig
from pipeline.training.trainer import alive, build_model
from pipeline.tuning.space import Dimension, search_space
from pipeline.tuning.studies import (
    HEARTBEAT,
    TrialResult,
    TuneResult,
    open_storage,
    shown,
    storage_url,
    summary,
    trial_result,
)

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class _Job:
    """What a worker process needs to join the study (picklable, for spawned processes)."""

    root: Path
    slug: str
    cfg: TrainConfig  # params hold the fixed options
    dims: dict[str, Dimension]
    budget: int
    timeout: float | None
    storage: str
    study: str
    pruner: Any = None  # an optuna pruner; None = MedianPruner
    heartbeat: int = HEARTBEAT
    sampler_seed: int | None = None


class _OverBudget(Exception):
    """A trial numbered past the budget: it closes without training."""


def _spec(comp: Competition, cfg: TrainConfig, dims: dict[str, Dimension]) -> dict[str, Any]:
    """What a study searches, saved in it so that workers joining it search the same thing."""
    spec = {"competition": comp.slug, "metric": comp.metric, "model": cfg.model,
            "space": {k: dims[k].text for k in sorted(dims)},
            "fixed": {k: str(v) for k, v in sorted(cfg.params.items())},
            "valid_pct": cfg.valid_pct, "seed": cfg.seed, "folds": cfg.folds, "features": cfg.features}
    return json.loads(json.dumps(spec))


def _open(job: _Job, comp: Competition) -> optuna.Study:
    """Create the study or join it, refusing to join one that searches something else."""
    import optuna

    storage = open_storage(job.storage, job.heartbeat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=job.sampler_seed, constant_liar=True)
    pruner = job.pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    direction: Literal["maximize", "minimize"] = "maximize" if comp.scorer.higher_is_better else "minimize"
    study = optuna.create_study(storage=storage, study_name=job.study, direction=direction, sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    wanted = _spec(comp, job.cfg, job.dims)
    saved = study.user_attrs.get("kc")
    if saved is None:
        study.set_user_attr("kc", wanted)
    elif saved != wanted:
        differ = "; ".join(f"{k} {_words(saved.get(k))}" for k in wanted if saved.get(k) != wanted[k])
        raise UsageError(f"study '{job.study}' in {shown(job.storage)} was started with other settings ({differ}); "
                         "run it with those, or start a new study with --study NAME")
    if study.user_attrs.get("budget", 0) < job.budget:
        study.set_user_attr("budget", job.budget)
    return study


def _words(value: Any) -> str:
    """A saved setting as the command line writes it: {"k": "3:9"} as k=3:9."""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _fail_dead(study: optuna.Study) -> None:
    """Mark failed the running trials of this machine's kc processes that no longer run (killed mid-trial)."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        where, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if where == host and pid.isdigit() and not alive(int(pid)):
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)


class _Reporter:
    """kc's on_epoch hook as Optuna's report/should_prune; only the first fit reports (later folds restart at 1)."""

    def __init__(self, trial: optuna.Trial, higher_is_better: bool):
        self.trial, self.higher, self.step = trial, higher_is_better, 0

    def __call__(self, record: Epoch) -> None:
        import optuna

        # a per-epoch figure that runs the metric's way: accuracy when higher is better, else RMSE or loss
        keys = ("valid_accuracy",) if self.higher else ("valid_rmse", "valid_loss")
        figures = record.figures()
        value = next((figures[k] for k in keys if k in figures), None)
        epoch = record.epoch
        if value is None or epoch <= self.step:
            return
        self.step = epoch
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at", epoch)
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")


class _Objective:
    """One trial: sample the options, train a normal kc run with them, return its score by the competition's metric."""

    def __init__(self, job: _Job, comp: Competition, ws: Workspace, data: Any):
        self.job, self.comp, self.ws, self.data = job, comp, ws, data

    def __call__(self, trial: optuna.Trial) -> float:
        from pipeline.training import trainer

        trial.set_user_attr("worker", _worker_id())
        if trial.number >= self.job.budget:  # trial numbers are the storage's tickets: this one is past the budget
            trial.set_user_attr("over_budget", True)
            raise _OverBudget
        params = {**self.job.cfg.params, **{name: d.suggest(trial) for name, d in self.job.dims.items()}}
        cfg = dataclasses.replace(self.job.cfg, params=params)
        reporter = _Reporter(trial, self.comp.scorer.higher_is_better)
        try:
            # trials are many and most are never submitted: `kc submit` predicts the test rows of the one it takes
            run = trainer.train(self.comp, self.ws, cfg, on_epoch=reporter, data=self.data, predict_test=False)
        except KcError as exc:
            trial.set_user_attr("error", str(exc))
            raise
        except KeyboardInterrupt:  # Ctrl-C outside a model's epoch loop: no run, the trial is marked failed
            trial.set_user_attr("interrupted", True)
            raise
        trial.set_user_attr("run_id", run.run_id)
        if run.metrics.interrupted:  # Ctrl-C mid-fit: the run keeps its best epoch, the trial is marked failed
            trial.set_user_attr("interrupted", True)
            raise KeyboardInterrupt
        return run.score


def _work(job: _Job, on_trial: Callable[[TrialResult], None] | None = None, study: optuna.Study | None = None,
          comp: Competition | None = None) -> bool:
    """Run trials of the study in this process until the budget or the timeout; True when interrupted.

    `comp`: the competition as the caller resolved it (a worker process, given none, reads it by slug)."""
    import optuna

    from pipeline.core.dataset import load_dataset

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trials are reported as values, not log lines
    comp, ws = comp or competitions.get(job.slug, job.root), Workspace(job.root)
    study = study or _open(job, comp)
    _fail_dead(study)
    if len(study.get_trials(deepcopy=False)) >= job.budget:
        return False
    data = load_dataset(comp, ws, job.cfg.features)
    data.train_inputs(model_class(job.cfg.model, comp).scaled)  # a table that cannot be encoded fails here, once
    objective = _Objective(job, comp, ws, data)

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial and not trial.user_attrs.get("over_budget"):
            on_trial(trial_result(trial))

    stop = optuna.study.MaxTrialsCallback(job.budget, states=None)  # every trial counts, running ones too
    try:
        study.optimize(objective, timeout=job.timeout, catch=(KcError,), callbacks=[stop, report],
                       gc_after_trial=False)
    except _OverBudget:
        pass
    except KeyboardInterrupt:
        return True
    return False


def _child(job: _Job, conn: Any, n_threads: int) -> None:
    """A spawned worker process: run trials, then send back ("done", interrupted) or ("error", message)."""

    def interrupt_once(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break closing the trial
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt_once)
    # share the cores: each of n workers running torch or OpenMP on all of them is slower than one alone
    os.environ.setdefault("OMP_NUM_THREADS", str(n_threads))
    try:
        conn.send(("done", _work(job)))
    except KeyboardInterrupt:
        conn.send(("done", True))
    except KcError as exc:
        conn.send(("error", str(exc)))


def _workers(job: _Job, n: int, study: optuna.Study, on_trial: Callable[[TrialResult], None] | None) \
        -> tuple[bool, list[str]]:
    """Run n spawned worker processes on the study, reporting finished trials as they land; (interrupted, errors)."""
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i in range(n):
        seed = None if job.sampler_seed is None else job.sampler_seed + i  # equal seeds would propose equal trials
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(dataclasses.replace(job, sampler_seed=seed), send, job.cfg.threads))
        proc.start()
        send.close()
        procs.append((proc, recv))
    seen: set[int] = set()
    interrupted = False
    while any(p.is_alive() for p, _ in procs):
        try:
            time.sleep(0.5)
            _announce(study, seen, on_trial)
        except KeyboardInterrupt:
            if interrupted:  # a second Ctrl-C: stop waiting
                for p, _ in procs:
                    p.terminate()
                raise
            interrupted = True
            for p, _ in procs:  # the terminal sent it to every worker; a kill -INT of this process did not
                if p.is_alive() and p.pid:
                    os.kill(p.pid, signal.SIGINT)
    errors = []
    for i, (p, recv) in enumerate(procs):
        p.join()
        try:
            message = recv.recv()
        except EOFError:  # it died before saying how it ended
            message = ("error", f"worker {i + 1} stopped (exit code {p.exitcode})")
        if message[0] == "error":
            errors.append(message[1])
        interrupted = interrupted or message == ("done", True)
    _announce(study, seen, on_trial)
    return interrupted, list(dict.fromkeys(errors))


def _announce(study: optuna.Study, seen: set[int], on_trial: Callable[[TrialResult], None] | None) -> None:
    for t in study.get_trials(deepcopy=False):
        if t.state.is_finished() and t.number not in seen and not t.user_attrs.get("over_budget"):
            seen.add(t.number)
            if on_trial:
                on_trial(trial_result(t))


def tune(comp: Competition, ws: Workspace, cfg: TrainConfig, trials: int, timeout: float | None = None,
         workers: int = 1, storage: str | None = None, study: str | None = None,
         on_trial: Callable[[TrialResult], None] | None = None, pruner: Any = None, heartbeat: int = HEARTBEAT,
         sampler_seed: int | None = None) -> TuneResult:
    """Search the model's options until the study holds `trials` trials; cfg.params may hold ranges, choices, values."""
    import optuna

    from pipeline.core.dataset import load_dataset

    if trials < 1 or workers < 1:
        raise UsageError("--trials and --workers must be at least 1")
    cls = model_class(cfg.model, comp)
    dims, fixed = search_space(cls, cfg.params, comp.modality)
    if cfg.folds is None:  # small tables: every trial scored out-of-fold, not on a few dozen held-out rows
        cfg = dataclasses.replace(cfg, folds=auto_folds(comp, load_dataset(comp, ws, cfg.features).y))
    cfg = dataclasses.replace(cfg, params=fixed).check()
    # the threads are shared: n workers on the machine each get their part, so none spin against another
    cfg = dataclasses.replace(cfg, threads=max(1, threads.resolve(cfg.threads) // workers))
    url = storage_url(comp, ws, storage)
    job = _Job(ws.root, comp.slug, cfg, dims, trials, timeout, url, study or f"{comp.slug}-{cfg.model}", pruner,
               heartbeat, sampler_seed)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # fixed options the images refuse (a CNN's -p shift=20 on 28-pixel digits; `kc convert --size` records the size
    # trained on) fail here, once, before a study records them
    build_model(comp, cfg).check_options((0, *comp.image_shape) if comp.image_shape else None)
    opened = _open(job, comp)  # fail here, once, on a bad storage or a study that searches something else
    problems: list[str] = []
    if workers == 1:
        interrupted = _work(job, on_trial, opened, comp)
    else:
        data = load_dataset(comp, ws, cfg.features)
        if comp.modality == "tabular":  # the workers map the matrices encoded here instead of each encoding them
            from pipeline.tables import cache

            data = cache.kept(comp, ws, data)
        data.train_inputs(cls.scaled)  # fail once here, not in every worker
        interrupted, problems = _workers(job, workers, opened, on_trial)
    return summary(opened, comp, url, interrupted=interrupted, problems=problems)
