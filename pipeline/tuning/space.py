"""What `kc tune` searches: each model's declared space, narrowed or widened by the user's `-p` ranges and choices."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import UsageError

if TYPE_CHECKING:
    import optuna

    from pipeline.models.base import Model


@dataclass(frozen=True)
class Dimension:
    """One searched option: an int or float range (optionally on a log scale), or a list of choices."""

    name: str
    kind: str  # "int", "float" or "choice"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def text(self) -> str:
        """The spec as written on the command line: low:high[:log] or a|b|c."""
        if self.kind == "choice":
            return "|".join(str(c) for c in self.choices)
        return f"{self.low}:{self.high}" + (":log" if self.log else "")

    def suggest(self, trial: optuna.Trial) -> Any:
        """Ask Optuna's sampler for this option's value in a trial."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


def _value(cls: type[Model], name: str, text: str) -> Any:
    """A command-line value converted to the option's type and checked as the model checks it."""
    return getattr(cls.from_params({name: text.strip()}), name)


def parse_dimension(cls: type[Model], name: str, text: str) -> Dimension | None:
    """Parse low:high[:log] (numeric options) or a|b|c into a Dimension; None when the text is one fixed value."""
    kind = type(next(f.default for f in dataclasses.fields(cls) if f.name == name))
    if name == "threads" and ("|" in text or ":" in text):  # capped at the cores, 1:8 would search 1:2 unawares
        raise UsageError(f"-p threads={text}: threads change how fast a trial runs, not what it learns; give one "
                         "count (or --threads)")
    if "|" in text:
        choices = tuple(dict.fromkeys(_value(cls, name, part) for part in text.split("|")))
        if len(choices) < 2:
            raise UsageError(f"-p {name}={text}: give two or more different choices, e.g. {name}=a|b")
        return Dimension(name, "choice", choices=choices)
    if kind not in (int, float) or ":" not in text:
        return None
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].strip() != "log"):
        raise UsageError(f"-p {name}={text}: expected low:high or low:high:log, e.g. {name}=1:10")
    low, high = (_value(cls, name, part) for part in parts[:2])
    if not low < high:
        raise UsageError(f"-p {name}={text}: the low end must be below the high end")
    if len(parts) == 3 and low <= 0:
        raise UsageError(f"-p {name}={text}: a log range must start above 0")
    return Dimension(name, kind.__name__, low, high, len(parts) == 3)


def search_space(cls: type[Model], overrides: dict[str, Any],
                 modality: str = "pixels") -> tuple[dict[str, Dimension], dict[str, Any]]:
    """The model's declared space for these inputs, with the user's -p applied: (searched options, fixed options)."""
    from pipeline.models.base import check_inputs, for_inputs

    names = [f.name for f in dataclasses.fields(cls) if f.init]
    check_inputs(cls, overrides, modality)
    texts, fixed = for_inputs(cls, dict(cls.space), modality), {}
    for name, value in overrides.items():
        if name not in names:
            raise UsageError(f"model '{cls.name}' has no option {name}; it takes: {', '.join(names)}")
        if isinstance(value, str) and parse_dimension(cls, name, value) is not None:
            texts[name] = value
        else:
            fixed[name] = value
            texts.pop(name, None)
    cls.from_params(fixed)  # refuse fixed values no model can use, before any trial
    dims = {name: parse_dimension(cls, name, text) for name, text in texts.items()}
    searched = {name: d for name, d in dims.items() if d is not None}
    if not searched:
        raise UsageError(f"nothing to search: model '{cls.name}' declares no search space; give ranges or choices, "
                         f"e.g. -p {names[0]}=LOW:HIGH or -p {names[0]}=A|B")
    return searched, fixed
