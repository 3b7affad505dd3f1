"""Date and time columns found from their values: which text columns hold dates, and in what format."""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SHARE = 0.9  # a column is dates when this share of its non-missing cells parse
SAMPLE = 500  # distinct cells looked at to decide
# tried after ISO 8601 and pandas' guess; month first before day first, as most Kaggle data is American
COMMON = tuple(f"{day}{time}" for day in ("%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%Y/%m/%d", "%d.%m.%Y",
                                          "%d-%m-%Y", "%d %b %Y", "%b %d %Y", "%d-%b-%Y", "%Y%m%d")
               for time in ("", " %H:%M", " %H:%M:%S"))
# a date has digits and at least one separator, and is not a plain number (1999 or 3.5 are numbers, not dates)
_LOOKS = re.compile(r"(?=.*\d)(?=.*[-/:. T])(?!^[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?$).{6,40}")


def date_format(values: pd.Series) -> str | None:
    """The strptime format (or "ISO8601") that parses the column's cells as dates, or None when they are not dates."""
    import pandas as pd
    from pandas.tseries.api import guess_datetime_format

    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return None
    cells = values.dropna().astype(str).str.strip()
    cells = cells[cells != ""]
    if cells.empty:
        return None
    sample = pd.Series(cells.drop_duplicates().head(SAMPLE))
    if sample.str.fullmatch(_LOOKS.pattern).mean() < SHARE:
        return None
    with warnings.catch_warnings():  # pandas warns that it guessed day-first; kc tries both orders anyway
        warnings.simplefilter("ignore")
        guessed = {guess_datetime_format(v) for v in sample.head(20)} - {None}
    candidates = ["ISO8601", *sorted(guessed), *COMMON]
    for fmt in candidates:
        parsed = pd.to_datetime(sample, format=fmt, errors="coerce")
        if parsed.notna().mean() >= SHARE:
            return fmt
    return None


def parse(values: pd.Series, fmt: str) -> pd.Series:
    """The cells as datetimes in `fmt`; NaT where missing or unparseable."""
    import pandas as pd

    cells = values.astype(object).where(values.notna(), "")
    parsed = pd.to_datetime(pd.Series(cells, index=values.index).astype(str).str.strip(), format=fmt, errors="coerce",
                            utc=True)
    return parsed.dt.tz_localize(None)  # times with offsets compare in UTC; naive ones are taken as UTC


def all_later(train: pd.Series, test: pd.Series, fmt: str) -> bool:
    """Whether every date of `test` comes after every date of `train` (both in `fmt`; cells that are no dates left
    out), so that random folds mix past and future rows where the competition asks for a forecast."""
    first, last = parse(test, fmt).min(), parse(train, fmt).max()
    return bool(first == first and last == last and first > last)  # NaT (no dates in a file) compares False
