"""The one model protocol every kc model follows, scikit-learn style."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.core import threads as cores
from pipeline.core.epochs import Epoch
from pipeline.core.errors import UsageError

EpochCallback = Callable[[Epoch], None]


class NotFittedError(UsageError):
    """`predict` was called before `fit`."""


@dataclasses.dataclass
class Model:
    """Base class: dataclass fields are hyperparameters; learned state ends in `_` and is set by `fit`."""

    name: ClassVar[str] = "model"
    tasks: ClassVar[tuple[str, ...]] = ("binary", "multiclass")  # the competition tasks it learns
    modalities: ClassVar[tuple[str, ...]] = ("tabular", "pixels", "images")  # the inputs it reads
    fastai: ClassVar[bool] = False  # trains a fastai Learner (which logs TensorBoard events through its callback)
    scaled: ClassVar[bool] = True  # wants standardised, log-tamed table features (linear, kNN); trees do not
    signed: ClassVar[tuple[str, ...]] = ()  # numeric options that may be negative
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}  # text options and the values they take, refused up front
    space: ClassVar[dict[str, str]] = {}  # what `kc tune` searches: option -> "low:high[:log]" or "a|b|c"
    images_only: ClassVar[tuple[str, ...]] = ()  # options that act on (n, h, w) images only: not for tables

    def __post_init__(self) -> None:
        """Refuse text options that are none of their `choices`, however the model is built (CLI, tuner or Python)."""
        for key, allowed in self.choices.items():
            if getattr(self, key) not in allowed:
                *others, last = allowed
                raise UsageError(f"option {key}={getattr(self, key)!r}: expected {', '.join(others)} or {last}")

    def params(self) -> dict[str, Any]:
        """The hyperparameters, as saved with every run."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Model:
        """Build from a dict of hyperparameters, converting strings from the command line; reject unknown ones."""
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise UsageError(f"model '{cls.name}' has no option {', '.join(unknown)}; it takes: {', '.join(fields)}")
        converted = {}
        for key, value in params.items():
            default = fields[key].default
            converted[key] = _coerce(key, value, type(default)) if isinstance(value, str) else value
            _check_value(cls, key, converted[key])
        # -p threads=64 on 2 cores, or a run saved on a bigger machine: more threads only wait, and 10**12 crashes
        if isinstance(converted.get("threads"), int):
            converted["threads"] = min(converted["threads"], cores.available())
        return cls(**converted)

    def check_options(self, shape: tuple[int, ...] | None = None) -> None:
        """Refuse option values this model cannot train with (on inputs of `shape`, when given); a saved run is
        loaded without this check, since predicting does not use them. Nothing for most models."""

    def plan(self) -> str:
        """A short note on how `fit` will run on this machine (the CNN's precision and threads); "" for most."""
        return ""

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> Model:
        """Learn from X, y (optionally watching a validation set each epoch); return self.

        y holds int64 class codes for classification, float values for regression (see `is_regression`).
        """
        raise NotImplementedError

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, classes) float32 class probabilities."""
        raise NotImplementedError

    def predict_values(self, X: np.ndarray) -> np.ndarray:
        """(n,) float64 regression predictions."""
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n,) int64 class codes, or (n,) float64 values for a regression model."""
        if self.regression_:
            return self.predict_values(X)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def save(self, folder: Path) -> None:
        """Write learned state into `folder`."""
        raise NotImplementedError

    def load(self, folder: Path) -> Model:
        """Read learned state written by `save`; return self."""
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not self.fitted_:
            raise NotFittedError(f"this {self.name} model is not fitted yet: call fit(X, y) first")

    def _start(self, y: np.ndarray) -> None:
        """Record what `fit` learns first: regression or classes, and that it is fitted; refuse a task it lacks."""
        self.regression_ = is_regression(y)
        if self.regression_ and "regression" not in self.tasks:
            raise UsageError(f"model '{self.name}' classifies; it takes int64 class codes, not float targets")
        if not self.regression_ and self.tasks == ("regression",):
            raise UsageError(f"model '{self.name}' regresses; it takes float targets, not class codes")
        self.classes_ = None if self.regression_ else np.unique(y)
        self.fitted_ = True

    classes_: np.ndarray | None = dataclasses.field(default=None, init=False, repr=False, compare=False)
    history_: list[Epoch] = dataclasses.field(default_factory=list, init=False, repr=False, compare=False)
    interrupted_: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)
    # a time limit's deadline stopped an epochal fit part-way (the fastai models keep their best validated epoch)
    out_of_time_: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)
    compute_: str = dataclasses.field(default="", init=False, repr=False, compare=False)  # how fit ran here
    regression_: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)
    fitted_: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)


def saved_in(folder: Path) -> str:
    """How errors name a saved model's folder: "run <id>", or "run <id>'s fold0/bag1" for a part of a run."""
    parts = folder.parts
    if "runs" not in parts[:-1]:
        return f"run {folder.name}"
    at = len(parts) - 1 - parts[::-1].index("runs")
    inside = "/".join(parts[at + 2:])
    return f"run {parts[at + 1]}" + (f"'s {inside}" if inside else "")


def saved_file(folder: Path, name: str) -> str:
    """How errors name a file of a saved model: "run <id>'s lgbm.txt", or "run <id>'s fold0/bag1/lgbm.txt"."""
    label = saved_in(folder)
    return f"{label}/{name}" if "'s " in label else f"{label}'s {name}"


def for_inputs(cls: type[Model], params: dict[str, Any], modality: str) -> dict[str, Any]:
    """`params` without the options that act on images only, when the inputs are a table (what a run records)."""
    return params if modality != "tabular" else {k: v for k, v in params.items() if k not in cls.images_only}


def check_inputs(cls: type[Model], params: dict[str, Any], modality: str) -> None:
    """Refuse an images-only option given for a table: it would do nothing."""
    if modality == "tabular" and (given := [k for k in params if k in cls.images_only]):
        raise UsageError(f"model '{cls.name}': {', '.join(given)} act(s) on digit images only; drop "
                         f"{' '.join('-p ' + k for k in given)} for a table")


def is_regression(y: np.ndarray) -> bool:
    """Float targets are values to regress; integer targets are class codes."""
    return np.asarray(y).dtype.kind == "f"


# options that count or scale something: zero or less makes no model
POSITIVE = ("epochs", "bs", "lr", "k", "batch", "n_estimators", "max_iter", "width", "max_leaf_nodes",
            "min_samples_leaf", "C", "alpha", "learning_rate")


def _check_value(cls: type[Model], key: str, value: Any) -> None:
    """Refuse option values no model can use: NaN or infinite numbers, non-positive counts and rates, negatives
    (text options are checked against their `choices` when the model is built)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if not math.isfinite(value):
        raise UsageError(f"option {key}={value}: expected a finite number")
    if key in POSITIVE and value <= 0:
        raise UsageError(f"option {key}={value}: must be greater than 0")
    if value < 0 and key not in cls.signed:
        raise UsageError(f"option {key}={value}: must not be negative")


def _coerce(key: str, value: str, kind: type) -> Any:
    """Turn a command-line string into the field's type, or say what was expected."""
    try:
        if kind is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return kind(value)
    except ValueError:
        raise UsageError(f"option {key}={value!r}: expected {kind.__name__}") from None
