"""A submission file checked by the competition's description: ids as the sample has them, labels as Kaggle wants."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError, SubmissionError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.ingest.csvfiles import header_cells, read_table, shown
from pipeline.ingest.ids import first_repeat, id_keys, ids_text, keys_or_text
from pipeline.ingest.sources import require_fetched

if TYPE_CHECKING:
    import pandas as pd

_FLOAT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
SIZE_FACTOR = 20  # a submission may be this many times the sample's size (plus a megabyte) before it is refused
EXTRA_COLUMNS = 64  # named header cells a submission may carry beyond its own (the check then names the extra)
MAX_COLUMNS = 2048  # header cells of any kind (a spreadsheet's empty trailing ones included)


def sample_ids(comp: Competition, ws: Workspace) -> list[str]:
    """The sample submission's ids, as normalised text, in Kaggle's order."""
    path = require_fetched(comp, ws) / comp.sample_file
    keys = keys_or_text(comp, read_table(path, strings=True)[comp.id_column])
    row = first_repeat(keys)
    if row is not None:
        raise DataError(f"{comp.sample_file}: row {row + 1}, column {comp.id_column}: id {shown(keys[row])} appears "
                        f"twice in the sample submission; fetch {comp.slug} again with --force")
    return keys.tolist()


def _labels_ok(comp: Competition, cells: pd.Series) -> np.ndarray:
    """(n,) bool: which cells are valid labels (a class, or a number the metric takes)."""
    import pandas as pd

    if comp.is_classification:
        return cells.isin(comp.classes).to_numpy(dtype=bool)
    numeric = cells.str.fullmatch(_FLOAT.pattern).fillna(False).to_numpy(dtype=bool)
    values = pd.to_numeric(cells.where(numeric), errors="coerce").to_numpy(np.float64)
    return numeric & comp.scorer.valid_values(np.where(numeric, values, 0.0))


def _expected_label(comp: Competition) -> str:
    if comp.is_classification:
        return "one of " + ", ".join(comp.classes)
    return comp.scorer.value_rule


def check(comp: Competition, want: list[str], df: pd.DataFrame) -> None:
    """Raise SubmissionError naming the first problem; `df` holds the CSV's cells as strings."""
    import pandas as pd

    expected = list(comp.submission_columns)
    id_col = expected[0]
    if list(df.columns[: len(expected)]) == expected and len(df.columns) > len(expected):
        extra = df.iloc[:, len(expected):].astype(str).apply(lambda c: c.str.strip() != "")
        at_row, at_col = map(int, np.argwhere(extra.to_numpy())[0]) if extra.to_numpy().any() else (0, 0)
        at_col += len(expected)
        raise SubmissionError(f"{len(df.columns)} columns, expected {len(expected)} ({','.join(expected)}); "
                              f"row {at_row + 1}, column {at_col + 1} holds '{shown(df.iloc[at_row, at_col])}'")
    if list(df.columns) != expected:
        header = ",".join(shown(c) for c in df.columns)
        raise SubmissionError(f"columns must be {','.join(expected)} in that order; got {shown(header)}")
    cells = {col: df[col].astype(str).str.strip() for col in expected}
    for col in expected:
        empty = (cells[col] == "").to_numpy()
        if empty.any():
            raise SubmissionError(f"row {int(empty.argmax()) + 1}: {col} is empty")
    got = id_keys(comp, cells[id_col])
    invalid = pd.isna(got)
    if invalid.any():
        bad = int(invalid.argmax())
        raise SubmissionError(f"row {bad + 1}: {id_col} '{shown(cells[id_col].iloc[bad])}' is not an integer id")
    twice = first_repeat(got)
    if twice is not None:
        raise SubmissionError(f"row {twice + 1}: {id_col} {shown(got[twice])} appears twice")
    wanted = np.asarray(want, dtype=object)
    missing = wanted[~pd.Series(wanted, dtype=object).isin(got).to_numpy()].tolist()
    extra_ids = got[~pd.Series(got, dtype=object).isin(wanted).to_numpy()].tolist()
    if len(got) != len(want) or missing or extra_ids:
        parts = [f"{len(want)} rows expected, got {len(got)}"]
        if missing:
            parts.append("missing " + ids_text(missing, id_col))
        if extra_ids:
            parts.append("unexpected " + ids_text(extra_ids, id_col))
        raise SubmissionError("; ".join(parts))
    # rows in another order than the sample's are fine: Kaggle matches a submission's rows to its answers by id
    if comp.writes_proba:
        _check_proba(comp, cells)
        return
    for label_col in expected[1:]:  # one column, or several targets' values
        wrong = ~_labels_ok(comp, cells[label_col])
        if wrong.any():
            row = int(wrong.argmax())
            raise SubmissionError(f"row {row + 1}: {label_col} '{shown(cells[label_col].iloc[row])}' is not "
                                  f"{_expected_label(comp)}")


PROBA_SUM_TOLERANCE = 0.01  # a row of class probabilities may sum to 1 within this (kc writes them to 6 digits)


def _check_proba(comp: Competition, cells: dict[str, pd.Series]) -> None:
    """Every probability a number in [0, 1]; with one column per class, each row summing to 1 (several 0/1 targets'
    probabilities are each their own)."""
    import pandas as pd

    columns = comp.value_columns
    values = np.column_stack([pd.to_numeric(cells[c].where(cells[c].str.isascii()), errors="coerce")
                              .to_numpy(np.float64) for c in columns])
    bad = ~((values >= 0) & (values <= 1))  # NaN (unreadable) fails too
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise SubmissionError(f"row {row + 1}: {columns[col]} '{shown(cells[columns[col]].iloc[row])}' is not a "
                              "probability (a number from 0 to 1)")
    if len(columns) > 1 and not comp.targets:
        off = np.abs(values.sum(axis=1) - 1) > PROBA_SUM_TOLERANCE
        if off.any():
            row = int(off.argmax())
            raise SubmissionError(f"row {row + 1}: the probabilities of {', '.join(columns)} sum to "
                                  f"{values[row].sum():.4g}, not 1")


def validate_file(comp: Competition, ws: Workspace, path: Path) -> int:
    """Check any CSV against the competition's format; return its row count."""
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a CSV file")
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file (a device or a pipe?); save the submission as a CSV file first")
    sample = require_fetched(comp, ws) / comp.sample_file
    limit = SIZE_FACTOR * sample.stat().st_size + (1 << 20)
    size = path.stat().st_size
    if size > limit:
        raise SubmissionError(f"{path.name}: {size / 1e6:,.1f} MB, far larger than a {comp.slug} submission "
                              f"(the sample is {sample.stat().st_size / 1e6:,.2f} MB); is it the right file?")
    try:
        cells = header_cells(path)  # before pandas, which takes minutes over a million columns
        width = len(cells)
        while cells and not cells[-1]:  # a spreadsheet's empty trailing columns, allowed up to MAX_COLUMNS
            cells.pop()
        if len(cells) > len(comp.submission_columns) + EXTRA_COLUMNS or width > MAX_COLUMNS:
            raise SubmissionError(f"{path.name}: {width:,} columns in the header, expected "
                                  f"{len(comp.submission_columns)} ({','.join(comp.submission_columns)})")
        df = read_table(path, strings=True, blank_tail=True)
    except DataError as exc:
        raise SubmissionError(str(exc)) from None
    try:
        check(comp, sample_ids(comp, ws), df)
    except SubmissionError as exc:
        raise SubmissionError(f"{path.name}: {exc}") from None
    return len(df)


def frame(comp: Competition, ws: Workspace, ids: np.ndarray, predictions: np.ndarray) -> pd.DataFrame:
    """Predictions for the test ids as the submission's cells in the sample's order.

    `predictions` holds class codes or values (n,), or for a probability submission (n, classes) probabilities over
    `comp.classes` (binary with one column: the probability of classes[1] is written); for several targets,
    (n, targets) values or probabilities of classes[1].
    """
    import pandas as pd

    if len(predictions) != len(ids):
        raise SubmissionError(f"the model returned {len(predictions)} predictions for {len(ids)} test rows")
    columns = _value_cells(comp, np.asarray(predictions))  # one (n,) object array per value column
    keys = keys_or_text(comp, pd.Series(ids).astype(str))
    twice = first_repeat(keys)
    if twice is not None:  # two test rows with one id: refuse rather than submit one of them
        raise SubmissionError(f"{comp.test_file}: {comp.id_column} {shown(keys[twice])} appears twice among the test "
                              "rows; each test row needs its own id")
    want = sample_ids(comp, ws)
    order = pd.Index(keys).get_indexer(want)
    if (order < 0).any():
        missing = np.asarray(want, dtype=object)[order < 0].tolist()
        raise SubmissionError(f"test.csv has no row for {ids_text(missing, comp.id_column)} of the sample submission")
    df = pd.DataFrame({comp.id_column: want, **{name: cells[order] for name, cells in columns.items()}})
    check(comp, want, df)
    return df


def _value_cells(comp: Competition, predictions: np.ndarray) -> dict[str, np.ndarray]:
    """The submission's value columns as text, one (n,) object array each, in the sample's column order."""
    if comp.targets:
        return _target_cells(comp, predictions)
    if comp.writes_proba:
        proba = np.asarray(predictions, np.float64)
        if proba.ndim != 2 or proba.shape[1] != len(comp.classes) or not np.isfinite(proba).all():
            raise SubmissionError(f"the model returned {proba.shape} outputs, not finite probabilities over "
                                  f"{len(comp.classes)} classes")
        if not comp.proba_columns:  # binary, one column: the positive class
            return {comp.value_columns[0]: np.char.mod("%.6g", proba[:, 1]).astype(object)}
        index = {c: i for i, c in enumerate(comp.classes)}
        return {name: np.char.mod("%.6g", proba[:, index[name]]).astype(object) for name in comp.proba_columns}
    if comp.is_classification:
        codes = np.asarray(predictions)
        bad = (codes.dtype.kind not in "iu") or ((codes < 0) | (codes >= len(comp.classes))).any()
        if bad:
            row = int(np.argmax((codes < 0) | (codes >= len(comp.classes)))) + 1 if codes.dtype.kind in "iu" else 1
            raise SubmissionError(f"row {row}: the model returned class code {codes[row - 1]}; {comp.slug} has "
                                  f"codes 0-{len(comp.classes) - 1} ({', '.join(comp.classes)})")
        return {comp.value_columns[0]: np.asarray(comp.classes, dtype=object)[codes.astype(np.int64)]}
    return {comp.value_columns[0]: np.array([repr(float(v)) for v in predictions], dtype=object)}


def _target_cells(comp: Competition, predictions: np.ndarray) -> dict[str, np.ndarray]:
    """Several targets' columns as text: (n, targets) probabilities of classes[1], or values."""
    values = np.asarray(predictions, np.float64)
    if values.ndim != 2 or values.shape[1] != len(comp.targets) or not np.isfinite(values).all():
        raise SubmissionError(f"the model returned {values.shape} outputs, not finite "
                              f"{'probabilities' if comp.writes_proba else 'values'} for {len(comp.targets)} targets")
    if comp.writes_proba:
        return {name: np.char.mod("%.6g", values[:, j]).astype(object) for j, name in enumerate(comp.targets)}
    return {name: np.array([repr(float(v)) for v in values[:, j]], dtype=object) for j, name in enumerate(comp.targets)}
