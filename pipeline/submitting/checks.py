"""A submission file checked by the competition's description: ids as the sample has them, labels as Kaggle wants."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError, SubmissionError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.ingest.csvfiles import read_table, shown
from pipeline.ingest.sources import require_fetched

if TYPE_CHECKING:
    import pandas as pd

_INT = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only: full-width or Arabic-Indic digits are not Kaggle ints
_FLOAT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
SIZE_FACTOR = 20  # a submission may be this many times the sample's size (plus a megabyte) before it is refused


def sample_ids(comp: Competition, ws: Workspace) -> list[str]:
    """The sample submission's ids, as normalised text, in Kaggle's order."""
    path = require_fetched(comp, ws) / comp.sample_file
    column = read_table(path, strings=True)[comp.id_column].str.strip()
    return [_id_key(comp, v) or v for v in column]


def _id_key(comp: Competition, text: str) -> str | None:
    """An id's comparable form (ints without leading zeros), or None when it is no valid id."""
    if comp.id_type == "int":
        return str(int(text)) if _INT.fullmatch(text) else None
    return text if text else None


def _label_ok(comp: Competition, text: str) -> bool:
    if comp.is_classification:
        return text in comp.classes
    if not _FLOAT.fullmatch(text):
        return False
    value = float(text)
    return math.isfinite(value) and (value > 0 or not comp.scorer.log_target)


def _expected_label(comp: Competition) -> str:
    if comp.is_classification:
        return "one of " + ", ".join(comp.classes)
    return "a positive number (the metric takes logs)" if comp.scorer.log_target else "a finite number"


def _ids_text(values: list[str], id_col: str) -> str:
    more = f" and {len(values) - 1} more" if len(values) > 1 else ""
    return f"{id_col} {shown(values[0])}{more}"


def check(comp: Competition, want: list[str], df: pd.DataFrame) -> None:
    """Raise SubmissionError naming the first problem; `df` holds the CSV's cells as strings."""
    expected = list(comp.submission_columns)
    id_col, label_col = expected
    if list(df.columns[: len(expected)]) == expected and len(df.columns) > len(expected):
        extra = df.iloc[:, len(expected):].astype(str).apply(lambda c: c.str.strip() != "")
        row, col = map(int, np.argwhere(extra.to_numpy())[0]) if extra.to_numpy().any() else (0, 0)
        col += len(expected)
        raise SubmissionError(f"{len(df.columns)} columns, expected {len(expected)} ({','.join(expected)}); "
                              f"row {row + 1}, column {col + 1} holds '{shown(df.iloc[row, col])}'")
    if list(df.columns) != expected:
        got = ",".join(shown(c) for c in df.columns)
        raise SubmissionError(f"columns must be {','.join(expected)} in that order; got {shown(got)}")
    cells = {col: df[col].astype(str).str.strip() for col in expected}
    for col in expected:
        empty = (cells[col] == "").to_numpy()
        if empty.any():
            raise SubmissionError(f"row {int(empty.argmax()) + 1}: {col} is empty")
    got = [_id_key(comp, v) for v in cells[id_col]]
    for row, key in enumerate(got):
        if key is None:
            raise SubmissionError(f"row {row + 1}: {id_col} '{shown(cells[id_col].iloc[row])}' is not an integer id")
    seen: set[str] = set()
    for row, key in enumerate(got):
        if key in seen:
            raise SubmissionError(f"row {row + 1}: {id_col} {shown(key)} appears twice")
        seen.add(key)  # type: ignore[arg-type]
    missing = [v for v in want if v not in seen]
    wanted = set(want)
    extra_ids = [v for v in got if v not in wanted]
    if len(got) != len(want) or missing or extra_ids:
        parts = [f"{len(want)} rows expected, got {len(got)}"]
        if missing:
            parts.append("missing " + _ids_text(missing, id_col))
        if extra_ids:
            parts.append("unexpected " + _ids_text(extra_ids, id_col))  # type: ignore[arg-type]
        raise SubmissionError("; ".join(parts))
    if got != want:
        row = next(i for i, (a, b) in enumerate(zip(want, got, strict=True)) if a != b)
        raise SubmissionError(f"ids must follow the sample submission's order; row {row + 1} has {id_col} "
                              f"{shown(got[row])}, expected {shown(want[row])}")
    for row, text in enumerate(cells[label_col]):
        if not _label_ok(comp, text):
            raise SubmissionError(f"row {row + 1}: {label_col} '{shown(text)}' is not {_expected_label(comp)}")


def validate_file(comp: Competition, ws: Workspace, path: Path) -> int:
    """Check any CSV against the competition's format; return its row count."""
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a CSV file")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    sample = require_fetched(comp, ws) / comp.sample_file
    limit = SIZE_FACTOR * sample.stat().st_size + (1 << 20)
    size = path.stat().st_size
    if size > limit:
        raise SubmissionError(f"{path.name}: {size / 1e6:,.1f} MB, far larger than a {comp.slug} submission "
                              f"(the sample is {sample.stat().st_size / 1e6:,.2f} MB); is it the right file?")
    try:
        df = read_table(path, strings=True)
    except DataError as exc:
        raise SubmissionError(str(exc)) from None
    try:
        check(comp, sample_ids(comp, ws), df)
    except SubmissionError as exc:
        raise SubmissionError(f"{path.name}: {exc}") from None
    return len(df)


def frame(comp: Competition, ws: Workspace, ids: np.ndarray, predictions: np.ndarray) -> pd.DataFrame:
    """Predictions (class codes or values) for the test ids, as the submission's cells in the sample's order."""
    import pandas as pd

    if len(predictions) != len(ids):
        raise SubmissionError(f"the model returned {len(predictions)} predictions for {len(ids)} test rows")
    if comp.is_classification:
        codes = np.asarray(predictions)
        bad = (codes.dtype.kind not in "iu") or ((codes < 0) | (codes >= len(comp.classes))).any()
        if bad:
            row = int(np.argmax((codes < 0) | (codes >= len(comp.classes)))) + 1 if codes.dtype.kind in "iu" else 1
            raise SubmissionError(f"row {row}: the model returned class code {codes[row - 1]}; {comp.slug} has "
                                  f"codes 0-{len(comp.classes) - 1} ({', '.join(comp.classes)})")
        labels = np.asarray(comp.classes, dtype=object)[codes.astype(np.int64)]
    else:
        labels = np.array([repr(float(v)) for v in predictions], dtype=object)
    by_id = dict(zip((_id_key(comp, str(i)) or str(i) for i in ids), labels, strict=True))
    want = sample_ids(comp, ws)
    missing = [i for i in want if i not in by_id]
    if missing:
        raise SubmissionError(f"test.csv has no row for {_ids_text(missing, comp.id_column)} of the sample submission")
    id_col, label_col = comp.submission_columns
    df = pd.DataFrame({id_col: want, label_col: [by_id[i] for i in want]})
    check(comp, want, df)
    return df
