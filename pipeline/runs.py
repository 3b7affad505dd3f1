"""`kc train` and `kc runs`: fit a model on a validation split, record the run, compare runs."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

import pipeline
from pipeline.competitions import Competition
from pipeline.convert import Dataset, load_dataset
from pipeline.errors import DataError, UsageError
from pipeline.models import model_class
from pipeline.models.base import EpochCallback, Model, accuracy
from pipeline.workspace import Workspace

Stage = Callable[[str], None]


@dataclasses.dataclass
class TrainConfig:
    """Everything `kc train` needs; saved with every run."""

    model: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    valid_pct: float = 0.1
    seed: int = 0
    cv: int = 0  # k-fold cross-validation on the training rows as well, 0 = off
    device: str = "auto"


@dataclasses.dataclass(frozen=True)
class Run:
    """A recorded run: its id, folder, config and metrics."""

    run_id: str
    folder: Path
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def score(self) -> float:
        """Validation accuracy."""
        return float(self.metrics.get("valid_accuracy", float("nan")))

    @property
    def plots(self) -> list[Path]:
        """The PNGs the run drew."""
        return sorted(self.folder.glob("*.png"))


def split(y: np.ndarray, valid_pct: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train indices, valid indices), reproducible from the seed."""
    if not 0 < valid_pct < 1:
        raise UsageError(f"--valid-pct {valid_pct}: expected a fraction between 0 and 1, e.g. 0.1")
    rng = np.random.default_rng(seed)
    valid = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        valid.append(members[: max(1, round(valid_pct * len(members)))])
    valid_idx = np.sort(np.concatenate(valid))
    train_idx = np.setdiff1d(np.arange(len(y)), valid_idx)
    return train_idx, valid_idx


def folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """k stratified folds of indices."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(k)]
    for label in np.unique(y):
        for i, index in enumerate(rng.permutation(np.flatnonzero(y == label))):
            parts[i % k].append(int(index))
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


def build_model(comp: Competition, cfg: TrainConfig) -> Model:
    """The configured model, with the run's seed and device filled in where the model takes them."""
    cls = model_class(cfg.model, comp.task)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    params = dict(cfg.params)
    if "seed" in names:
        params.setdefault("seed", cfg.seed)
    if "device" in names:
        params.setdefault("device", cfg.device)
    elif cfg.device == "cuda":
        raise UsageError(f"--device cuda: model '{cfg.model}' runs on the CPU only")
    return cls.from_params(params)


def git_commit() -> str | None:
    """kc's short git commit, when kc runs from a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(pipeline.__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cross_validate(comp: Competition, cfg: TrainConfig, X: np.ndarray, y: np.ndarray) -> list[float]:
    """Accuracy of a fresh model on each of `cfg.cv` folds."""
    scores = []
    parts = folds(y, cfg.cv, cfg.seed)
    for part in parts:
        rest = np.setdiff1d(np.arange(len(y)), part)
        model = build_model(comp, cfg).fit(X[rest], y[rest])
        scores.append(accuracy(y[part], model.predict(X[part])))
    return scores


def _new_run_id(runs: Path, model: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id, n = f"{stamp}-{model}", 2
    while (runs / run_id).exists():
        run_id, n = f"{stamp}-{model}-{n}", n + 1
    return run_id


def train(comp: Competition, ws: Workspace, cfg: TrainConfig, on_epoch: EpochCallback | None = None,
          on_stage: Stage | None = None, data: Dataset | None = None) -> Run:
    """Fit, score on the validation split, and write the run folder (atomically)."""
    from pipeline import plots

    stage = on_stage or (lambda _: None)
    model = build_model(comp, cfg)  # fail on bad options before any work
    if cfg.cv == 1 or cfg.cv < 0:
        raise UsageError(f"--cv {cfg.cv}: expected 0 (off) or a number of folds >= 2")
    stage("loading data")
    data = data or load_dataset(comp, ws)
    X, y = data.X, data.y
    train_idx, valid_idx = split(y, cfg.valid_pct, cfg.seed)
    cv_scores: list[float] = []
    if cfg.cv:
        stage(f"{cfg.cv}-fold cross-validation")
        cv_scores = cross_validate(comp, cfg, X, y)
    stage(f"training {cfg.model} on {len(train_idx):,} rows")
    t0 = time.perf_counter()
    model.fit(X[train_idx], y[train_idx], X[valid_idx], y[valid_idx], on_epoch=on_epoch)
    fit_seconds = time.perf_counter() - t0
    stage(f"scoring {len(valid_idx):,} validation rows")
    t0 = time.perf_counter()
    proba = model.predict_proba(X[valid_idx])
    predict_seconds = time.perf_counter() - t0
    pred = model.classes_[np.argmax(proba, 1)]
    metrics: dict[str, Any] = {
        "valid_accuracy": accuracy(y[valid_idx], pred),
        "fit_seconds": round(fit_seconds, 3),
        "predict_seconds": round(predict_seconds, 3),
        "train_rows": len(train_idx),
        "valid_rows": len(valid_idx),
        "interrupted": bool(model.interrupted_),
        "history": model.history_,
    }
    if cv_scores:
        metrics |= {"cv_accuracy": float(np.mean(cv_scores)), "cv_std": float(np.std(cv_scores)),
                    "cv_scores": cv_scores}
    config = {
        "competition": comp.slug,
        "model": cfg.model,
        "params": model.params(),
        "valid_pct": cfg.valid_pct,
        "seed": cfg.seed,
        "cv": cfg.cv,
        "device": cfg.device,
        "data_fingerprint": data.fingerprint,
        "kc_version": pipeline.__version__,
        "git_commit": git_commit(),
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    runs = ws.runs_dir(comp.slug)
    runs.mkdir(parents=True, exist_ok=True)
    run_id = _new_run_id(runs, cfg.model)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=runs))
    try:
        model.save(tmp)
        np.savez(tmp / "valid.npz", index=valid_idx, proba=proba.astype(np.float32), classes=model.classes_)
        title = f"{comp.slug} · {cfg.model} · valid {100 * metrics['valid_accuracy']:.2f}%"
        if model.history_:
            plots.learning_curves(model.history_, tmp / "learning_curves.png", title)
        plots.confusion_matrix(y[valid_idx], pred, model.classes_, tmp / "confusion_matrix.png", title)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        tmp.rename(runs / run_id)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Run(run_id, runs / run_id, config, metrics)


def _read(folder: Path) -> Run | None:
    try:
        config = json.loads((folder / "config.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return Run(folder.name, folder, config, metrics)


def list_runs(comp: Competition, ws: Workspace) -> list[Run]:
    """Every complete run of the competition, best validation score first."""
    folder = ws.runs_dir(comp.slug)
    runs = [r for d in sorted(folder.glob("[!.]*")) if d.is_dir() and (r := _read(d))] if folder.is_dir() else []
    return sorted(runs, key=lambda r: (-r.score, r.run_id))


def get_run(comp: Competition, ws: Workspace, run_id: str | None = None) -> Run:
    """One run by id, or the best one when no id is given."""
    runs = list_runs(comp, ws)
    if not runs:
        raise DataError(f"no runs for {comp.slug} yet: run `kc train {comp.slug} --model linear` first")
    if run_id is None:
        return runs[0]
    for r in runs:
        if r.run_id == run_id:
            return r
    raise UsageError(f"no run '{run_id}' for {comp.slug}; see `kc runs {comp.slug}`")


def load_model(comp: Competition, run: Run) -> Model:
    """Rebuild a run's model from its saved config and weights."""
    cls = model_class(run.config["model"], comp.task)
    model = cls.from_params(run.config["params"])
    try:
        return model.load(run.folder)
    except (OSError, RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise DataError(f"run {run.run_id}: its saved model cannot be loaded ({type(exc).__name__}); "
                        f"train it again or pick another run") from None
