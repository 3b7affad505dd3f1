"""Saved runs as typed records: the config read back is a TrainConfig, the metrics a RunMetrics."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.epochs import Epoch
from pipeline.core.errors import DataError, UsageError
from pipeline.core.threads import check as check_threads
from pipeline.core.workspace import Workspace

DEVICES = ("auto", "cpu", "cuda")
TRAIN_ROWS = "train_rows.npy"  # beside each saved model: the training rows it was fitted on, (n,) int64
MAX_JSON = 64 << 20  # bytes of a run's JSON file kc reads; a bigger one is no file kc wrote
_NUMBER = (int, float)
# each field's JSON types; others make the run damaged (shown as such) instead of breaking a command later
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,), "params": (dict,), "valid_pct": _NUMBER, "seed": (int,), "folds": (int,), "full": (bool,),
    "device": (str,), "features": (str, type(None)), "tensorboard": (bool,), "competition": (str,),
}
_METRIC_TYPES: dict[str, tuple[type, ...]] = {
    "metric": (str,), "score": _NUMBER, "valid_rows": (int,), "train_rows": (int,), "fit_seconds": _NUMBER,
    "predict_seconds": _NUMBER, "scored_on": (str,), "interrupted": (bool,), "out_of_time": (bool,), "history": (list,),
    "fold_scores": (list,), "full_epochs": (int, type(None)), "submits_with": (str,), "data_fingerprint": (str,),
    "learning_key": (str,),
    "kc_version": (str,), "git_commit": (str, type(None)), "created": (str,), "target_scores": (dict,),
    "most_folds": (int, type(None)),
}


@dataclass
class TrainConfig:
    """Everything `kc train` needs; saved with every run as config.json and rebuilt from it."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    valid_pct: float = 0.1
    seed: int = 0
    folds: int | None = 0  # K > 1: K models on K folds, scored out-of-fold; 0 = one split; None = honesty.auto_folds
    full: bool = False  # after validating, refit on all rows (with the epochs validation chose) for submissions
    device: str = "auto"
    features: str | None = None  # the feature builder; None = the competition's own
    tensorboard: bool = False  # also write TensorBoard event files into the run's tensorboard/ folder
    threads: int = 0  # threads every model may use; 0 = the cores idle at the start (the run records the number)
    time_limit: float = 0.0  # seconds the whole run may take (lgbm, catboost, blend, cnn, tabular); 0 = no limit

    def check(self) -> TrainConfig:
        """Refuse values no run could use, with the option to fix; return self."""
        if not isinstance(self.valid_pct, float | int) or not 0.01 <= self.valid_pct <= 0.5:
            raise UsageError(f"--valid-pct {self.valid_pct}: expected a fraction between 0.01 and 0.5, e.g. 0.1")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise UsageError(f"--seed {self.seed}: expected an integer from 0 to 4294967295")
        if self.folds is not None and (not isinstance(self.folds, int) or self.folds == 1  # None: the trainer picks
                                       or not 0 <= self.folds <= 20):
            raise UsageError(f"--folds {self.folds}: expected 0 (one validation split) or a number from 2 to 20")
        check_threads(self.threads)
        if not isinstance(self.time_limit, float | int) or not 0 <= self.time_limit < math.inf:
            raise UsageError(f"--time-limit {self.time_limit}: expected seconds above 0 (or 0 for no limit)")
        if self.device not in DEVICES:
            raise UsageError(f"--device {self.device}: expected one of {', '.join(DEVICES)}")
        return self

    @classmethod
    def from_json(cls, data: Any, origin: str) -> TrainConfig:
        """Rebuild a saved config (nanoGPT-style `TrainConfig(**saved)`), failing with one line when damaged."""
        _check_types(data, _CONFIG_TYPES, origin)
        return _rebuild(cls, data, origin)


@dataclass
class RunMetrics:
    """How a run scored, how long it took, and where it came from; saved as metrics.json."""

    metric: str
    score: float  # the competition's metric on the validation rows (out-of-fold: every training row)
    valid_rows: int
    train_rows: int
    fit_seconds: float
    predict_seconds: float
    scored_on: str = "split"  # "split": one held-out split; "oof": out-of-fold over K folds
    interrupted: bool = False
    out_of_time: bool = False  # a time limit's deadline stopped a fit part-way (a fastai model: its best epoch kept)
    history: list[Epoch] = field(default_factory=list)  # the first model's epochs
    fold_scores: list[float] = field(default_factory=list)  # each fold's score, when scored out-of-fold
    compute: str = ""  # how the model ran here, when it chose ("fp32 channels-last, 1 thread (no native bfloat16…)")
    full_epochs: int | None = None  # the refit on all rows (--full) trained this many epochs
    submits_with: str = "model"  # "model", "fold-mean" (the K fold models averaged) or "full" (the refit)
    data_fingerprint: str = ""
    learning_key: str = ""  # the description's Competition.learning_key when trained ("": saved before kc kept it)
    kc_version: str = ""
    git_commit: str | None = None
    created: str = ""
    target_scores: dict[str, float] = field(default_factory=dict)  # several targets: each one's score, in order
    most_folds: int | None = None  # the most folds (up to 5) --folds could take on this data; None in older runs

    def to_json(self) -> dict[str, Any]:
        """As metrics.json holds it; each epoch a plain object, as kc has always written them."""
        return dataclasses.asdict(self) | {"history": [e.to_json() for e in self.history]}

    @property
    def stopped_early(self) -> bool:
        """Ctrl-C or a time limit's deadline ended a fit, which then keeps its best validated epoch, not its last."""
        return self.interrupted or self.out_of_time

    @property
    def fold_std(self) -> float | None:
        """Spread of the per-fold scores, when scored out-of-fold."""
        return float(np.std(self.fold_scores)) if self.fold_scores else None

    @classmethod
    def from_json(cls, data: Any, origin: str) -> RunMetrics:
        """Rebuild saved metrics, failing with one line when damaged."""
        if isinstance(data, dict) and "metric" not in data and "valid_accuracy" in data:  # kc 0.1 runs
            data = {**data, "metric": "accuracy", "score": data["valid_accuracy"]}
        _check_types(data, _METRIC_TYPES, origin)
        metrics = _rebuild(cls, data, origin)
        numbers = [metrics.score, metrics.fit_seconds, metrics.predict_seconds, *metrics.fold_scores,
                   *(v for v in metrics.target_scores.values() if v == v)]  # NaN: a target of one class held out
        try:
            metrics.history = [Epoch.from_json(r) for r in metrics.history]
        except ValueError:
            metrics.history = []  # refused below
            numbers.append(math.nan)
        if not all(_finite(v) for v in numbers):
            raise DataError(f"{origin}: scores must be numbers and history a list of epochs")
        if min(metrics.valid_rows, metrics.train_rows) < 0 or metrics.scored_on not in ("split", "oof") or \
                metrics.submits_with not in ("model", "fold-mean", "full"):
            raise DataError(f"{origin}: row counts, scored_on or submits_with hold values kc never writes")
        if metrics.submits_with == "fold-mean" and not 2 <= len(metrics.fold_scores) <= 20:
            raise DataError(f"{origin}: submits with the fold models, but lists {len(metrics.fold_scores)} folds")
        return metrics


def _finite(value: Any) -> bool:
    """A JSON number (not a bool) that is finite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_types(data: Any, types: dict[str, tuple[type, ...]], origin: str) -> None:
    """Refuse fields of the wrong JSON type (a bool is no number), naming the first."""
    if not isinstance(data, dict):
        raise DataError(f"{origin}: expected a JSON object")
    for key, allowed in types.items():
        value = data.get(key)
        if key in data and (not isinstance(value, allowed) or (type(value) is bool and bool not in allowed)):
            raise DataError(f"{origin}: {key} is {type(value).__name__}, expected "
                            f"{' or '.join('null' if t is type(None) else t.__name__ for t in allowed)}")


def _rebuild(cls: Any, data: Any, origin: str) -> Any:
    if not isinstance(data, dict):
        raise DataError(f"{origin}: expected a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING and n not in data]
    if missing:
        raise DataError(f"{origin}: missing {', '.join(missing)}")
    try:
        value = cls(**{k: v for k, v in data.items() if k in fields})
    except TypeError as exc:
        raise DataError(f"{origin}: {exc}") from None
    if hasattr(value, "params") and not isinstance(value.params, dict):
        raise DataError(f"{origin}: params must be a JSON object")
    return value


@dataclass(frozen=True)
class Run:
    """A recorded run: its id, folder, config and metrics."""

    run_id: str
    folder: Path
    config: TrainConfig
    metrics: RunMetrics

    @property
    def score(self) -> float:
        """The competition's metric on the validation split."""
        return self.metrics.score

    @property
    def model(self) -> str:
        """The model's registry name."""
        return self.config.model

    @property
    def plots(self) -> list[Path]:
        """The PNGs the run drew."""
        return sorted(self.folder.glob("*.png"))

    def show(self) -> None:
        """Draw the run's pictures inline (in Jupyter)."""
        from IPython.display import Image, display

        for png in self.plots:
            display(Image(filename=str(png)))


@dataclass(frozen=True)
class Damaged:
    """A run folder kc cannot read, and why."""

    run_id: str
    reason: str


def _read_json(folder: Path, name: str) -> Any:
    try:
        if (folder / name).stat().st_size > MAX_JSON:
            raise ValueError("too large")
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise DataError(f"run {folder.name}: {name} cannot be read ({type(exc).__name__})") from None


def read_run(folder: Path) -> Run:
    """One run folder as a Run, or DataError saying what is damaged."""
    config = TrainConfig.from_json(_read_json(folder, "config.json"), f"run {folder.name}: config.json")
    metrics = RunMetrics.from_json(_read_json(folder, "metrics.json"), f"run {folder.name}: metrics.json")
    unit = metrics.metric in ("accuracy", "f1", "f1-macro", "f1-micro", "roc-auc", "map@3", "mean-auc")  # in [0, 1]
    bounded = not unit or 0 <= metrics.score <= 1
    if not isinstance(metrics.score, int | float) or not math.isfinite(metrics.score) or not bounded:
        raise DataError(f"run {folder.name}: metrics.json has no usable score")
    return Run(folder.name, folder, config, metrics)


def same_training(comp: Competition, metrics: RunMetrics, fingerprint: str) -> bool:
    """Whether a run was trained on the data (`fingerprint`) and under the description (`same_description`) as they
    are now."""
    return (not metrics.data_fingerprint or metrics.data_fingerprint == fingerprint) and same_description(comp, metrics)


def same_description(comp: Competition, metrics: RunMetrics) -> bool:
    """Whether a run was trained under competition.json's target, classes, metric and value floor as they are now; a
    run saved before kc kept the description's key is judged by its metric."""
    return metrics.learning_key == comp.learning_key if metrics.learning_key else metrics.metric == comp.metric


def runs_folder(comp: Competition, ws: Workspace) -> Path:
    """The competition's runs folder, refused when it is a symbolic link (new runs would land wherever it points)."""
    folder = ws.runs_dir(comp.slug)
    if folder.is_symlink():
        raise DataError(f"{folder} is a symbolic link, not kc's own folder of runs: move it away, then train again")
    return folder


def scan(comp: Competition, ws: Workspace) -> tuple[list[Run], list[Damaged]]:
    """Every run of the competition, best score first (by its metric), and the damaged ones beside them."""
    folder = runs_folder(comp, ws)
    good, damaged = [], []
    for d in sorted(folder.glob("[!.]*")) if folder.is_dir() else []:
        if not d.is_dir():
            continue
        try:
            good.append(read_run(d))
        except DataError as exc:
            damaged.append(Damaged(d.name, str(exc).removeprefix(f"run {d.name}: ")))
    metric = comp.scorer
    # runs trained under another description (scored by another metric, say) after the others, whatever their score
    good.sort(key=lambda r: (not same_description(comp, r.metrics), metric.sort_key(r.score), r.run_id))
    return good, damaged


def list_runs(comp: Competition, ws: Workspace) -> list[Run]:
    """Every readable run of the competition, best score first."""
    return scan(comp, ws)[0]


def get_run(comp: Competition, ws: Workspace, run_id: str | None = None) -> Run:
    """One run by id, or the best one that finished when no id is given."""
    if run_id is not None:
        folder = runs_folder(comp, ws) / run_id
        if not run_id.strip() or "/" in run_id or run_id.startswith(".") or not folder.is_dir():
            raise UsageError(f"no run '{run_id}' for {comp.slug}; see `kc runs {comp.slug}`")
        return read_run(folder)
    runs = list_runs(comp, ws)
    if not runs:
        raise DataError(f"no runs for {comp.slug} yet: run `kc train {comp.slug}` first")
    finished = [r for r in runs if not r.metrics.interrupted]  # a half-trained model is used only when named
    if not finished:
        raise UsageError(f"every run of {comp.slug} was interrupted: name one with --run {runs[0].run_id}, or train "
                         f"again with `kc train {comp.slug}`")
    return finished[0]


def load_models(comp: Competition, run: Run) -> list[Any]:
    """The models a run submits with: its one model, its refit on all rows, or its K fold models; each checked
    against the competition (task, classes, learned shapes)."""
    return [_load(comp, run, folder) for folder in _model_folders(run)]


def load_model(comp: Competition, run: Run) -> Any:
    """Rebuild a run's (first) model from its saved config and weights."""
    return load_models(comp, run)[0]


def _model_folders(run: Run) -> list[Path]:
    if run.metrics.submits_with == "fold-mean":
        return [run.folder / f"fold{k}" for k in range(len(run.metrics.fold_scores))]
    return [run.folder]


def load_train_rows(run: Run, rows: int) -> list[np.ndarray] | None:
    """The training rows each of `load_models`' models was fitted on (None for runs from before kc recorded them)."""
    found = []
    for folder in _model_folders(run):
        try:
            index = np.load(folder / TRAIN_ROWS, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"run {run.run_id}: {TRAIN_ROWS} cannot be read ({type(exc).__name__}); "
                            "train the run again") from None
        if index.ndim != 1 or index.dtype.kind not in "iu" or (len(index) and (index.min() < 0 or index.max() >= rows)):
            raise DataError(f"run {run.run_id}: {TRAIN_ROWS} is damaged or from other data; train the run again")
        found.append(index)
    return found


def _load(comp: Competition, run: Run, folder: Path) -> Any:
    from pipeline.models import model_class

    cls = model_class(run.config.model, comp)
    try:
        model = cls.from_params(run.config.params)
    except UsageError as exc:  # the run's own config.json, edited or from another kc: not the user's command line
        raise DataError(f"run {run.run_id}: its config.json says {exc}; train it again or pick another run") from None
    try:
        model = model.load(folder)
    except DataError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, EOFError, TypeError, pickle.UnpicklingError) as exc:
        raise DataError(f"run {run.run_id}: its saved model cannot be loaded ({type(exc).__name__}); "
                        f"train it again or pick another run") from None
    check_fits(comp, run, model)
    return model


def check_fits(comp: Competition, run: Run, model: Any, n_features: int | None = None) -> None:
    """Refuse a loaded model that disagrees with the competition, or with `n_features` input columns when given."""
    problem = _misfit(comp, model, n_features)
    if problem:
        raise DataError(f"run {run.run_id}: its saved model {problem}; train it again or pick another run")


def _misfit(comp: Competition, model: Any, n_features: int | None) -> str | None:
    """How a loaded model disagrees with the competition (task, classes, input width, learned shapes); None if not."""
    if bool(getattr(model, "regression_", False)) == comp.is_classification:
        return "predicts " + ("values" if comp.is_classification else "classes") + f", unlike {comp.slug}"
    if comp.is_classification:
        classes = np.asarray(getattr(model, "classes_", None))
        if classes.ndim != 1 or classes.dtype.kind not in "iu" or len(np.unique(classes)) != len(classes) or \
                len(classes) < 2 or classes.min() < 0 or classes.max() >= len(comp.classes):
            return f"has the classes {str(classes.tolist())[:60]}, not {comp.slug}'s codes 0-{len(comp.classes) - 1}"
    est = getattr(model, "estimator_", None)
    width = getattr(est, "n_features_in_", None)
    if est is not None and n_features is not None and width != n_features:
        return f"takes {str(width)[:20]} input columns, where the data has {n_features}"
    coef = getattr(est, "coef_", None)
    if coef is not None and (np.ndim(coef) not in (1, 2) or np.shape(coef)[-1] != width):
        return f"has weights of shape {np.shape(coef)} for {str(width)[:20]} input columns"
    return None


def read_valid(run: Run, comp: Competition, rows: int) -> dict[str, np.ndarray]:
    """The run's validation predictions (index, outputs, fold), checked against `rows` training rows, or DataError."""
    try:
        with np.load(run.folder / "valid.npz", allow_pickle=False) as saved:
            out = {"index": saved["index"], "outputs": saved["outputs" if "outputs" in saved else "proba"],
                   "fold": saved["fold"] if "fold" in saved else np.zeros(len(saved["index"]), np.int64)}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DataError(f"run {run.run_id}: valid.npz cannot be read ({type(exc).__name__}); "
                        "train the run again") from None
    index, outputs = out["index"], out["outputs"]
    shape = (len(index), len(comp.targets)) if comp.targets else \
        (len(index), len(comp.classes)) if comp.is_classification else (len(index),)
    if index.ndim != 1 or index.dtype.kind not in "iu" or len(out["fold"]) != len(index) \
            or (len(index) and (index.min() < 0 or index.max() >= rows)) or outputs.shape != shape \
            or outputs.dtype.kind != "f" or not np.isfinite(outputs).all():
        raise DataError(f"run {run.run_id}: valid.npz is damaged or from other data; train the run again")
    return out
