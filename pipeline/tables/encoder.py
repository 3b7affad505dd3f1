"""Generic features for any Kaggle table: types read from the data, statistics fitted on train rows only."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pipeline.core.errors import DataError, UsageError

# normalised spellings of the two values of a boolean-like text column; the first of each pair means 1
_BOOLEAN_PAIRS = (("true", "false"), ("yes", "no"), ("y", "n"), ("t", "f"), ("1", "0"))
_TRUE = frozenset(pair[0] for pair in _BOOLEAN_PAIRS)
MISSING = "<missing>"  # the category of missing text cells (one-hot column, frequency table key)


def numbers(values: pd.Series) -> np.ndarray:
    """(n,) float64: the cells as numbers, NaN where missing, unparseable or infinite."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        out = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        out = pd.to_numeric(text(values), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(out), out, np.nan)


def text(values: pd.Series) -> pd.Series:
    """The cells as stripped strings (object dtype), NaN where missing or blank; text stripped by Arrow, not per row."""
    if not _is_text(values):  # numbers, dates, categoricals:
        out = values.astype(object).map(lambda v: str(v).strip(), na_action="ignore").astype(object)  # as printed
        return out.where(out.notna() & (out != ""))
    strings = values if isinstance(values.dtype, pd.StringDtype) else values.astype("string[pyarrow]")
    stripped = strings.str.strip()
    return stripped.astype(object).where((stripped.fillna("") != "").to_numpy(dtype=bool))


def _is_text(values: pd.Series) -> bool:
    """Object or string cells, which Arrow strips; anything else is text as printed."""
    return values.dtype == object or isinstance(values.dtype, pd.StringDtype)


def positions(values: pd.Series, keys: Sequence[str]) -> np.ndarray:
    """(n,) int64: each cell's index in `keys` as `text` would give it (missing or blank as MISSING), -1 if absent."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = values.astype("string[pyarrow]").str.strip() if _is_text(values) else text(values).astype("string[pyarrow]")
    strings = pc.fill_null(pc.cast(pa.array(cells), pa.large_string()), "")
    strings = pc.if_else(pc.equal(strings, ""), MISSING, strings)
    found = pc.index_in(strings, value_set=pa.array(list(keys), type=pa.large_string()))
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class _Numeric:
    """A number column: median-imputed, optionally flagged; scaled variant logged if skewed, then standardised."""

    kind: ClassVar[str] = "numeric"
    column: str
    median: float
    flag: bool  # train had missing values: add a 0/1 `<column>_missing` column
    low: float  # the train range: the scaled variant clips numbers into it
    high: float
    log: bool
    mean: float  # of the (logged) imputed train values, for the scaled variant
    std: float

    def names(self, scaled: bool) -> list[str]:
        value = f"log1p({self.column})" if scaled and self.log else self.column
        return [value, f"{self.column}_missing"] if self.flag else [value]

    def encode(self, values: pd.Series, scaled: bool) -> np.ndarray:
        x = numbers(values)
        missing = np.isnan(x)
        x = np.where(missing, self.median, x)
        if scaled:  # clipped into the train range so one extreme test row cannot dominate a linear model
            x = np.clip(x, self.low, self.high)
            if self.log:
                x = np.log1p(np.maximum(x, 0.0))
            x = (x - self.mean) / self.std
        return np.column_stack([x, missing]) if self.flag else x[:, None]


@dataclasses.dataclass(frozen=True)
class _Boolean:
    """A two-valued column (True/False, yes/no, 0/1 text): one 0/1 column, missing -> the train mode, flagged."""

    kind: ClassVar[str] = "boolean"
    column: str
    fill: float  # 0 or 1, the more common train value; also used for unseen spellings
    flag: bool

    def names(self, scaled: bool) -> list[str]:
        return [self.column, f"{self.column}_missing"] if self.flag else [self.column]

    def encode(self, values: pd.Series, scaled: bool) -> np.ndarray:
        words = text(values).str.lower()
        known = words.isin(_TRUE | {pair[1] for pair in _BOOLEAN_PAIRS}).to_numpy()
        x = np.where(known, words.isin(_TRUE).to_numpy(), self.fill).astype(np.float64)
        return np.column_stack([x, words.isna().to_numpy()]) if self.flag else x[:, None]


@dataclasses.dataclass(frozen=True)
class _OneHot:
    """Low-cardinality text: one 0/1 column per train category (missing is a category); unseen -> all zeros."""

    kind: ClassVar[str] = "onehot"
    column: str
    categories: tuple[str, ...]  # MISSING stands for missing cells

    def names(self, scaled: bool) -> list[str]:
        return [f"{self.column}={category}" for category in self.categories]

    def encode(self, values: pd.Series, scaled: bool) -> np.ndarray:
        at = positions(values, self.categories)
        out = np.zeros((len(at), len(self.categories)))
        seen = at >= 0
        out[np.flatnonzero(seen), at[seen]] = 1.0
        return out


@dataclasses.dataclass(frozen=True)
class _Frequency:
    """High-cardinality text that repeats: the share of train rows holding the value (or missing); unseen -> 0."""

    kind: ClassVar[str] = "frequency"
    column: str
    shares: dict[str, float]  # at most max_frequency most common values (MISSING too); rarer ones count as unseen

    def names(self, scaled: bool) -> list[str]:
        return [f"{self.column}_frequency"]

    def encode(self, values: pd.Series, scaled: bool) -> np.ndarray:
        at = positions(values, tuple(self.shares))
        shares = np.append(np.fromiter(self.shares.values(), np.float64, len(self.shares)), 0.0)  # [-1]: unseen
        return shares[at][:, None]


DATE_PARTS = ("year", "month", "day", "weekday", "dayofyear", "hour", "minute")
_DAY_US = 86_400 * 10**6


def date_parts(values: pd.Series, fmt: str) -> dict[str, np.ndarray]:
    """(n,) float64 arrays: each of DATE_PARTS and `elapsed` (days since 1970), NaN where a cell is no date."""
    from pipeline.core.dates import parse

    when = parse(values, fmt)
    missing = when.isna().to_numpy()
    out = {part: getattr(when.dt, part).to_numpy(dtype=np.float64, na_value=np.nan) for part in DATE_PARTS}
    # microseconds: nanoseconds overflow past 2262 (9999-12-31 came out as -56,160 days)
    elapsed = when.to_numpy(dtype="datetime64[us]").astype(np.int64) / _DAY_US
    out["elapsed"] = np.where(missing, np.nan, elapsed)
    return out


@dataclasses.dataclass(frozen=True)
class _Date:
    """Dates and times: year, month, day, weekday, day of year, hour and minute (when train has them), elapsed days."""

    kind: ClassVar[str] = "date"
    column: str
    format: str  # strptime format or "ISO8601"
    parts: tuple[str, ...]  # the parts kept: those that vary in train, plus `elapsed`
    medians: tuple[float, ...]  # per part, for missing or unparseable cells
    means: tuple[float, ...]
    stds: tuple[float, ...]
    flag: bool  # train had missing or unparseable cells: add `<column>_missing`

    def names(self, scaled: bool) -> list[str]:
        names = [f"{self.column}_{part}" for part in self.parts]
        return [*names, f"{self.column}_missing"] if self.flag else names

    def encode(self, values: pd.Series, scaled: bool) -> np.ndarray:
        found = date_parts(values, self.format)
        x = np.column_stack([found[part] for part in self.parts])
        missing = np.isnan(x[:, -1])
        x = np.where(np.isnan(x), np.asarray(self.medians)[None, :], x)
        if scaled:
            x = (x - np.asarray(self.means)[None, :]) / np.asarray(self.stds)[None, :]
        return np.column_stack([x, missing]) if self.flag else x


def _fit_date(column: str, values: pd.Series, fmt: str) -> _Date:
    found = date_parts(values, fmt)
    seen = ~np.isnan(found["elapsed"])
    varies = {p for p in DATE_PARTS if len(np.unique(found[p][seen])) > 1}
    if "day" not in varies:  # yearly or monthly rows (each on a 1st, say): weekday and day of year only restate
        varies -= {"weekday", "dayofyear"}  # the year or the month, or flag leap years
    parts = (*(p for p in DATE_PARTS if p in varies), "elapsed")
    x = np.column_stack([found[p] for p in parts])[seen]
    std = x.std(axis=0)
    return _Date(column, fmt, parts, tuple(map(float, np.median(x, axis=0))), tuple(map(float, x.mean(axis=0))),
                 tuple(float(v) if v > 0 else 1.0 for v in std), bool((~seen).any()))


_KINDS: dict[str, type] = {kind.kind: kind for kind in (_Numeric, _Boolean, _OneHot, _Frequency, _Date)}
Encoding = _Numeric | _Boolean | _OneHot | _Frequency | _Date


@dataclasses.dataclass
class TableEncoder:
    """Generic features for any table, fitted on train rows only."""

    max_onehot: int = 30  # text columns with <= this many distinct train values are one-hot encoded
    max_frequency: int = 500  # with more: frequency-encoded (the table keeps this many most common values)...
    min_repeat: float = 0.1  # ...unless fewer than this share of their train rows hold a repeated value: dropped
    skew: float = 0.75  # skewness above which a numeric column >= 0 is log1p-transformed (scaled variant only)
    numeric_share: float = 0.9  # a text column is numeric if this share of its non-missing train cells parse

    encodings_: list[Encoding] | None = dataclasses.field(default=None, init=False, repr=False)
    dropped_: dict[str, str] = dataclasses.field(default_factory=dict, init=False, repr=False)

    def fit(self, train: pd.DataFrame, drop: Sequence[str] = (), dates: Sequence[str] | None = None) -> TableEncoder:
        """Decide each column's encoding and learn its statistics from the train rows; return self.

        `dates` names the date columns as the competition's description found them (then no other column is tried
        as dates); None finds them from the values here.
        """
        if train.empty:
            raise DataError("the train table has no rows or no columns: nothing to learn features from")
        absent = [name for name in drop if name not in train.columns]
        if absent:
            raise DataError(f"the train table has no column {absent[0]!r} to drop; its columns: {', '.join(train)}")
        encodings, dropped = [], {}
        for column in train.columns:
            if column in drop:
                continue
            encoding = self._fit_column(str(column), train[column], dates)
            if isinstance(encoding, str):
                dropped[str(column)] = encoding
            else:
                encodings.append(encoding)
        if not encodings:
            why = "; ".join(f"{name}: {reason}" for name, reason in dropped.items()) or "all were dropped by request"
            text = any(reason.startswith("nearly unique") for reason in dropped.values())
            fix = (": kc learns from numbers, categories and dates, not free text; add columns computed from it "
                   "(its length, a word's presence) to train.csv and test.csv") if text else ""
            raise DataError(f"the train table has no usable feature columns ({why}){fix}")
        self.encodings_, self.dropped_ = encodings, dropped
        return self

    def transform(self, frame: pd.DataFrame, scaled: bool) -> np.ndarray:
        """(n, d) float32 features for `frame` (train or test rows); no NaN or inf."""
        encodings = self._fitted()
        absent = [e.column for e in encodings if e.column not in frame.columns]
        if absent:
            raise DataError(f"the table lacks column {absent[0]!r}, which the features were fitted with")
        out = np.empty((len(frame), len(self.names(scaled))), np.float32)  # filled a column block at a time
        at = 0
        for e in encodings:
            block = e.encode(frame[e.column], scaled)
            out[:, at : at + block.shape[1]] = block
            at += block.shape[1]
        return out

    def names(self, scaled: bool) -> tuple[str, ...]:
        """The feature names, one per column of `transform(frame, scaled)`."""
        return tuple(name for e in self._fitted() for name in e.names(scaled))

    def report(self) -> dict[str, list[str]]:
        """Which source column went where: numeric, imputed, log, boolean, onehot, frequency, dropped (with why)."""
        encodings = self._fitted()
        out: dict[str, list[str]] = {k: [] for k in ("numeric", "imputed", "log", "boolean", "onehot", "frequency",
                                                     "date")}
        for e in encodings:
            out[e.kind].append(e.column)
            if isinstance(e, _Numeric | _Boolean | _Date) and e.flag:
                out["imputed"].append(e.column)
            if isinstance(e, _Numeric) and e.log:
                out["log"].append(e.column)
        out["dropped"] = [f"{name}: {reason}" for name, reason in self.dropped_.items()]
        return out

    def to_json(self) -> dict[str, Any]:
        """The settings and fitted state as plain JSON types."""
        encodings = [{"kind": e.kind, **dataclasses.asdict(e)} for e in self._fitted()]
        for e in encodings:
            for key in ("categories", "parts", "medians", "means", "stds"):
                if key in e:
                    e[key] = list(e[key])
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        return {"settings": settings, "encodings": encodings, "dropped": dict(self.dropped_)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TableEncoder:
        """Rebuild a fitted encoder from `to_json` output."""
        try:
            encoder = cls(**d["settings"])
            encodings = []
            for item in d["encodings"]:
                fields = {key: value for key, value in item.items() if key != "kind"}
                for key in ("categories", "parts", "medians", "means", "stds"):
                    if key in fields:
                        fields[key] = tuple(fields[key])
                encodings.append(_KINDS[item["kind"]](**fields))
            encoder.encodings_, encoder.dropped_ = encodings, dict(d["dropped"])
        except (KeyError, TypeError) as exc:
            raise DataError(f"the saved feature encoder is malformed ({exc!r}): train the run again") from exc
        return encoder

    def _fitted(self) -> list[Encoding]:
        if self.encodings_ is None:
            raise UsageError("this TableEncoder is not fitted yet: call fit(train) first")
        return self.encodings_

    def _fit_column(self, column: str, values: pd.Series, dates: Sequence[str] | None) -> Encoding | str:
        """The column's encoding, or the reason it is dropped."""
        if values.isna().all():
            return "empty in train"
        if values.nunique(dropna=False) == 1:
            return f"constant in train (every row is {values.iloc[0]})"
        if dates is not None and column in dates:
            return _declared_date(column, values)
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            x = numbers(values)  # fast path: no text to look at
            return self._fit_numeric(column, x) if np.isfinite(x).any() else "no finite numbers in train"
        cells = text(values)
        present = cells.dropna()
        if present.empty or cells.nunique(dropna=False) == 1:
            return "empty or constant in train, once blanks and spaces are ignored"
        if _is_boolean(values, present):
            return _fit_boolean(column, present.str.lower(), flag=len(present) < len(cells))
        if dates is None:
            from pipeline.core.dates import date_format

            fmt = date_format(present)
            if fmt is not None:  # dates become parts models can use; the raw text never becomes a category
                return _fit_date(column, values, fmt)
        counts = present.value_counts()
        parsed = pd.to_numeric(pd.Series(counts.index, dtype=object), errors="coerce").to_numpy(np.float64)
        finite = int(counts.to_numpy()[np.isfinite(parsed)].sum())  # cells that parse, counted by distinct value
        if finite and finite >= self.numeric_share * len(present):
            return self._fit_numeric(column, numbers(values))
        if len(counts) <= self.max_onehot:
            missing = (MISSING,) if len(present) < len(cells) and MISSING not in counts.index else ()  # one column
            return _OneHot(column, tuple(sorted(counts.index)) + missing)
        repeated = counts[counts > 1].sum() / len(present)
        if repeated < self.min_repeat:
            return f"nearly unique ({len(counts)} distinct values in {len(present)} rows; {repeated:.0%} repeat)"
        # most common first, ties by value, so the table is the same whatever the row order
        counts = cells.fillna(MISSING).value_counts()
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: self.max_frequency]
        return _Frequency(column, {value: float(count / len(cells)) for value, count in ranked})

    def _fit_numeric(self, column: str, x: np.ndarray) -> _Numeric:
        seen = x[~np.isnan(x)]
        median = float(np.median(seen))
        filled = np.where(np.isnan(x), median, x)
        skewness = float(pd.Series(seen).skew()) if len(seen) > 2 else 0.0
        flag, low, high = bool(np.isnan(x).any()), float(seen.min()), float(seen.max())
        # only a long right tail (log1p would stretch a left-skewed column further), and more than two distinct values
        # (one strictly between the least and the greatest: cheaper than counting them)
        log = bool(low >= 0 and skewness > self.skew and np.any((seen > low) & (seen < high)))
        scaled = np.log1p(filled) if log else filled
        std = float(scaled.std())
        return _Numeric(column, median, flag, low, high, log, float(scaled.mean()), std if std > 0 else 1.0)


def _declared_date(column: str, values: pd.Series) -> _Date:
    """The encoding of a column the description names as dates; an error when its values are not dates after all."""
    from pipeline.core.dates import date_format

    fmt = date_format(text(values).dropna())
    if fmt is None:
        raise DataError(f"column {column!r} is listed in competition.json's date_columns, but its train values are "
                        "not dates in one format kc reads; remove it from date_columns or fix its values")
    return _fit_date(column, values, fmt)


def _is_boolean(values: pd.Series, present: pd.Series) -> bool:
    """A bool column, or text whose values are one pair of True/False-like spellings."""
    if pd.api.types.is_bool_dtype(values):
        return True
    words = {str(word).lower() for word in present.unique()}
    return any(words <= set(pair) for pair in _BOOLEAN_PAIRS)


def _fit_boolean(column: str, words: pd.Series, flag: bool) -> _Boolean:
    share_true = float(words.isin(_TRUE).mean())
    return _Boolean(column, 1.0 if share_true > 0.5 else 0.0, flag)
