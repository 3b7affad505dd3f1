"""A blend: several kc models fitted on the same rows, their outputs averaged with given or chosen weights."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.core.errors import DataError, UsageError
from pipeline.models._boosting import inner_split
from pipeline.models.base import EpochCallback, Model


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _member_names(listing: Any) -> list[str]:
    """The model names in blend.json's member list; ValueError unless it names two or more."""
    names = [m["name"] for m in listing]
    if len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise ValueError("blend.json must list two or more members by name")
    return names


# the usual pairs, each member with options suited to blending (benchmarks/RESULTS.md, House Prices): for values,
# a lasso (alpha as inner cross-validation chose it on House Prices' training folds) refitted without the rows it
# misses by more than 4 robust standard deviations and never run past the inputs it saw, beside boosted trees whose
# splits each look at a random 30% of the features; for classes, logistic regression, HistGradientBoosting and
# CatBoost with their own defaults (CatBoost as the third member: Titanic 83.73 -> 84.29 %, affairs 72.39 -> 72.62 %
# out-of-fold; on House Prices it changed nothing at three times the CPU, so values keep two). Classes: equal
# weights; values: equal weights among the members whose error on held-out rows is within LEFT_OUT_ABOVE of the best
# one's (a lasso on 4,000 diamonds, whose price is far from linear, missed by twice the trees' RMSE and pulled the
# blend from 695 to 864; on storm wind speeds, 1.8 times their squared error, 5.07 -> 5.56; weights chosen finely on
# held rows overfitted House Prices: benchmarks/RESULTS.md, "Blend weights").
DEFAULTS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "regression": (("sk-ridge", {"alpha": 0.4, "l1_ratio": 1.0, "trim": 4.0, "clip": True}),
                   ("sk-gbm", {"max_features": 0.3})),
    "classes": (("sk-logistic", {}), ("sk-gbm", {}), ("catboost", {})),
}
HELD = 0.25  # a value blend given no weights judges its members on this share of its rows, held out
CHOOSES_FROM = 80  # rows; fewer keep every member (a quarter of them is too few to judge by)
LEFT_OUT_ABOVE = 1.5  # times the best mean squared error on the held rows: a member missing by more is left out
# what reading a damaged blend.json raises (wrong types, missing keys, deep nesting, numbers past a float)
UNREADABLE = (OSError, ValueError, KeyError, TypeError, RecursionError, OverflowError)


@dataclasses.dataclass
class BlendModel(Model):
    """Members fitted one after another on the same inputs; predictions are their weighted mean."""

    name: ClassVar[str] = "blend"
    tasks: ClassVar[tuple[str, ...]] = ("binary", "multiclass", "regression")
    modalities: ClassVar[tuple[str, ...]] = ("tabular",)
    space: ClassVar[dict[str, str]] = {"weights": "1,1|2,1|1,2|3,1|1,3"}  # the first member against each other one
    members: str = ""  # model names, comma-separated, each with its default options; empty = DEFAULTS:
    # sk-ridge (as a robust lasso) + sk-gbm for regression, sk-logistic + sk-gbm + catboost for classes
    weights: str = ""  # comma-separated, one per member (the last also stands for any after it); empty = equal
    # (values: among the members not left out on held rows, see LEFT_OUT_ABOVE)
    threads: int = 0  # handed to every member that takes it; 0 = the idle cores
    time_limit: float = 0.0  # seconds for the whole blend (0 = no limit), shared among the members that keep time
    seed: int = 0

    models_: list[Model] = dataclasses.field(default_factory=list, init=False, repr=False)
    saved_: list[str] = dataclasses.field(default_factory=list, init=False, repr=False)  # members as loaded
    weights_: np.ndarray | None = dataclasses.field(default=None, init=False, repr=False)  # weights fit chose

    def _names_used(self) -> list[str]:
        return self.saved_ or self._plan_names()

    def _plan_names(self) -> list[str]:
        return [name for name, _ in self._plan()]

    def _plan(self) -> list[tuple[str, dict[str, Any]]]:
        """Each member's name and the options it is built with."""
        if self.members:
            return [(name, {}) for name in _names(self.members)]
        return list(DEFAULTS["regression" if self.regression_ else "classes"])

    def resolved(self, regression: bool, folder: Path | None = None) -> tuple[list[str], np.ndarray]:
        """The members and normalised weights a run of this blend used (its saved members when `folder` holds them);
        DataError when `folder` holds a blend.json that cannot be read (its weights would be a guess)."""
        self.regression_ = regression
        self.saved_, self.weights_ = [], None
        if folder is not None and os.path.lexists(folder / "blend.json"):  # a directory or dangling link: damaged
            try:
                state = json.loads((folder / "blend.json").read_text())
                self.saved_ = _member_names(state["members"])
                self.weights_ = _saved_weights(state, len(self.saved_))
            except UNREADABLE as exc:
                raise DataError(f"{folder.name}'s blend.json cannot be read: {exc}") from None
        return self._names_used(), self._weights()

    def _weights(self) -> np.ndarray:
        names = self._names_used()
        if len(names) < 2:
            raise UsageError(f"members={self.members!r}: a blend needs at least two models, e.g. sk-ridge,sk-gbm")
        if self.weights_ is not None:
            return self.weights_
        if not self.weights:
            return np.full(len(names), 1 / len(names))
        try:
            w = np.array([float(v) for v in self.weights.split(",")])
        except ValueError:
            raise UsageError(f"weights={self.weights!r}: expected numbers, e.g. 0.5,0.5") from None
        if 0 < len(w) < len(names):  # fewer numbers than members: the last one stands for the rest
            w = np.concatenate([w, np.full(len(names) - len(w), w[-1])])
        if len(w) != len(names) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise UsageError(f"weights={self.weights!r}: expected {len(names)} non-negative numbers")
        return w / w.sum()

    def _member(self, name: str, options: dict[str, Any]) -> Model:
        from pipeline.models import model_by_name

        if name == self.name:
            raise UsageError("a blend cannot hold another blend")
        cls = model_by_name(name)
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        given = {"seed": self.seed, "threads": self.threads}
        return cls.from_params({**options, **{k: v for k, v in given.items() if k in fields}})

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> BlendModel:
        """Fit every member on the same rows; a value blend given no weights first judges them on held rows."""
        self._start(y)
        self.weights_ = None
        self._weights()
        self.models_, self.saved_ = [], []
        plan = self._plan()
        timed = [i for i, (name, options) in enumerate(plan) if "time_limit" in self._member(name, options).params()]
        # the members' modules are imported by now (torch and fastai: seconds, once a process): the first fold's
        # members do not pay them out of their share; the run's later fits share what is left
        deadline = time.monotonic() + self.time_limit if self.time_limit else None
        # judged only where the time limit, if any, can be kept: members that keep no time would overrun it
        judging = self.regression_ and not self.weights and len(y) >= CHOOSES_FROM and (timed or deadline is None)
        if judging:
            keep, held = inner_split(None, len(y), HELD, self.seed)
            judging = bool(np.ptp(y[keep]) > 0)  # one value on the judged rows: nothing to judge (catboost refuses it)
        fits = _Fits(deadline, len(timed) * (2 if judging else 1))
        judged: list[Model] = []
        if judging:
            errors = []
            for i, (name, options) in enumerate(plan):
                judged.append(fits.fit(self._member(name, options), i in timed, X[keep], y[keep]))
                errors.append(float(np.mean((judged[-1].predict_values(X[held]) - y[held]) ** 2)))
                if judged[-1].interrupted_:  # Ctrl-C: no choice made on a half-trained member
                    self.interrupted_ = True
                    break
            self.weights_ = None if self.interrupted_ else _left_out(np.asarray(errors))
            fits.timed = sum(1 for i in timed if self.weights_ is None or self.weights_[i] > 0)
        for i, (name, options) in enumerate(plan):
            # left out: kept as judged, never refitted; after Ctrl-C the members judged so far are kept as they are
            if i < len(judged) and (self.interrupted_ or (self.weights_ is not None and self.weights_[i] == 0)):
                self.models_.append(judged[i])
                continue
            member = fits.fit(self._member(name, options), i in timed, X, y, X_valid, y_valid)
            self.interrupted_ = self.interrupted_ or member.interrupted_
            self.out_of_time_ = self.out_of_time_ or member.out_of_time_  # a member's cut is the blend's
            self.models_.append(member)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Weighted mean of the members' class probabilities (over this blend's classes)."""
        self._check_fitted()
        total = np.zeros((len(X), len(self.classes_)), np.float32)
        for w, m in zip(self._weights(), self.models_, strict=True):
            if w == 0:  # a member left out predicts nothing (its outputs might not even be finite)
                continue
            proba = m.predict_proba(X)
            total[:, np.searchsorted(self.classes_, m.classes_)] += w * proba
        return total

    def predict_values(self, X: np.ndarray) -> np.ndarray:
        """Weighted mean of the members' predictions."""
        self._check_fitted()
        used = [(w, m) for w, m in zip(self._weights(), self.models_, strict=True) if w > 0]  # left out: not asked
        return sum(w * m.predict_values(X) for w, m in used)

    def save(self, folder: Path) -> None:
        """Each member in a subfolder, with the list of members and their options."""
        self._check_fitted()
        listing = []
        for i, m in enumerate(self.models_):
            sub = folder / f"member{i}-{m.name}"
            sub.mkdir()
            m.save(sub)
            listing.append({"name": m.name, "params": m.params(), "folder": sub.name})
        state = {"members": listing, "regression": self.regression_,
                 "classes": None if self.classes_ is None else self.classes_.tolist(),
                 **({"chosen": self.weights_.tolist()} if self.weights_ is not None else {})}
        (folder / "blend.json").write_text(json.dumps(state, indent=2))

    def load(self, folder: Path) -> BlendModel:
        """Rebuild the members written by `save`."""
        from pipeline.models import model_by_name

        try:
            state = json.loads((folder / "blend.json").read_text())
            listing = state["members"]
            self.regression_ = bool(state["regression"])
            names = _member_names(listing)
            # a run with the default members keeps the defaults of the kc that trained it (a 2-member blend
            # from before CatBoost joined still loads); named members must match the run's config
            if (self.members and names != self._plan_names()) or any("/" in m["folder"] for m in listing):
                raise ValueError("members do not match the run's config")
            self.saved_ = names
            self.weights_ = _saved_weights(state, len(names))
            self.models_ = [model_by_name(m["name"]).from_params(m["params"]).load(folder / m["folder"])
                            for m in listing]
            self.classes_ = None if state["classes"] is None else np.asarray(state["classes"], dtype=np.int64)
        except UNREADABLE as exc:
            raise DataError(f"{folder.name}: the blend's saved members cannot be loaded ({exc})") from None
        self.fitted_ = True
        return self


def _saved_weights(state: dict[str, Any], members: int) -> np.ndarray | None:
    """The weights a fit chose, from blend.json (None: the given or equal ones); ValueError when they are damaged."""
    if "chosen" not in state:
        return None
    w = np.asarray(state["chosen"], dtype=np.float64)
    if w.shape != (members,) or not np.all(np.isfinite(w)) or (w < 0).any() or not np.isclose(w.sum(), 1):
        raise ValueError(f"its chosen weights {state['chosen']!r} are not {members} non-negative shares")
    return w


def _left_out(errors: np.ndarray) -> np.ndarray | None:
    """Equal weights among the members whose squared error is within LEFT_OUT_ABOVE of the best finite one; None
    (equal weights for all) when no error is finite."""
    finite = np.isfinite(errors)
    if not finite.any():
        return None
    kept = finite & (errors <= LEFT_OUT_ABOVE * errors[finite].min())
    return kept / kept.sum()


class _Fits:
    """Fits members, sharing a deadline among the timed fits still to come (each gets an equal part of what is left)."""

    def __init__(self, deadline: float | None, timed: int):
        self.deadline, self.timed = deadline, timed

    def fit(self, member: Model, timed: bool, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None) -> Model:
        """`member` fitted; a timed one under its part of the time left."""
        if self.deadline is not None and timed:
            left = self.deadline - time.monotonic()
            member = dataclasses.replace(member, time_limit=max(left, 0.01) / max(self.timed, 1))  # type: ignore
            self.timed -= 1
        return member.fit(X, y, X_valid, y_valid)
