"""Describe a competition kc has never seen from its files: ids, target, task, labels, metric, modality."""

from __future__ import annotations

import math
import re
from pathlib import Path

from pipeline.core import metrics
from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError
from pipeline.ingest.csvfiles import read_header, read_table, shown

MAX_CLASSES = 20  # integer targets with at most this many distinct values are classes
_PIXEL = re.compile(r"pixel(\d+)")
_TRUE, _FALSE = {"true", "True", "TRUE"}, {"false", "False", "FALSE"}


def sample_file(names: list[str]) -> str:
    """The sample submission among a competition's files: the one CSV named like *submission*."""
    found = sorted(n for n in names if n.lower().endswith(".csv") and "submission" in n.lower())
    if not found:
        raise DataError("no sample submission (a CSV named like sample_submission.csv): kc reads the id and target "
                        "columns from it; add Kaggle's sample submission to the files")
    if len(found) > 1:
        raise DataError(f"several sample submissions ({', '.join(found)}): keep the one Kaggle scores against")
    return found[0]


def infer(slug: str, folder: Path, metric: str | None = None) -> Competition:
    """A description of the competition whose files are in `folder`, read from the files themselves."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for name in ("train.csv", "test.csv"):
        if name not in names:
            raise DataError(f"no {name} among the files ({', '.join(names) or 'none'}); kc needs train.csv and "
                            "test.csv as Kaggle names them")
    sample = sample_file(names)
    columns = read_header(folder / sample)
    if len(columns) != 2:
        raise DataError(f"{sample} has {len(columns)} columns ({', '.join(map(shown, columns))}); kc handles one id "
                        "and one target column: describe the competition by hand in competition.json")
    if not all(columns):
        raise DataError(f"{sample}: a header cell is empty; the sample submission names its id and target columns")
    id_column, label_column = columns
    train_header = read_header(folder / "train.csv")
    # Kaggle's headers may differ in case between train and sample (Digit Recognizer: label vs Label)
    target = next((c for c in train_header if c.lower() == label_column.lower()), label_column) \
        if label_column not in train_header else label_column
    if target not in train_header:
        raise DataError(f"train.csv has no '{shown(target)}' column, the target named by {sample}; is the sample "
                        "submission from this competition?")
    test_header = read_header(folder / "test.csv")
    train = read_table(folder / "train.csv", strings=True)
    task, labels, classes = _target_kind(train[target].str.strip(), target)
    ids = read_table(folder / sample, strings=True)[id_column].str.strip()
    # ints only when written canonically: ids like 0013 keep their zeros as text
    id_type = "int" if ids.str.fullmatch(r"-?[1-9][0-9]{0,17}|0").all() else "str"
    test_has_ids = id_column in test_header
    if not test_has_ids and not (id_type == "int" and ids.tolist() == [str(i) for i in range(1, len(ids) + 1)]):
        raise DataError(f"test.csv has no '{shown(id_column)}' column and {sample}'s ids are not the row numbers "
                        "1..n: kc cannot tell which test row each id belongs to")
    shape = _image_shape([c for c in test_header if c != id_column])
    chosen = metric or metrics.default_for(task)
    metrics.get(chosen, task)  # an unknown or unfitting --metric is a usage error listing the choices
    return Competition(
        slug=slug,
        title=slug.replace("-", " ").title(),
        id_column=id_column,
        target_column=target,
        task=task,
        metric=chosen,
        id_type=id_type,
        labels=labels,
        classes=classes,
        modality="tabular" if shape is None else "pixels",
        image_shape=shape,
        features="generic" if shape is None else "pixels",
        default_model=_default_model(task, shape),
        sample_file=sample,
        extra_files=tuple(n for n in names if n not in ("train.csv", "test.csv", sample)),
        test_has_ids=test_has_ids,
        label_column="" if label_column == target else label_column,
    )


def _target_kind(values: object, target: str) -> tuple[str, str, tuple[str, ...]]:
    """(task, label format, classes) from the target's values in train.csv."""
    import pandas as pd

    assert isinstance(values, pd.Series)
    empty = values == ""
    if empty.any():
        row = int(empty.to_numpy().argmax()) + 1
        raise DataError(f"train.csv: row {row}, column {shown(target)}: the target is missing")
    distinct = set(values.unique())
    if distinct <= _TRUE | _FALSE and distinct & _TRUE and distinct & _FALSE:
        return "binary", "bool", ("False", "True")
    if all(v.isascii() and re.fullmatch(r"-?[0-9]+", v) for v in distinct) and len(distinct) <= MAX_CLASSES:
        classes = tuple(str(v) for v in sorted({int(v) for v in distinct}))
        if len(classes) < 2:
            raise DataError(f"train.csv: the target '{shown(target)}' has one value only; nothing to learn")
        return ("binary" if len(classes) == 2 else "multiclass"), "int", classes
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any() or not numbers.map(math.isfinite).all():
        row = int(numbers.isna().to_numpy().argmax()) + 1 if numbers.isna().any() else 1
        raise DataError(f"train.csv: row {row}, column {shown(target)}: '{shown(values.iloc[row - 1])}' is neither a "
                        f"class kc understands (integers, True/False) nor a number")
    return "regression", "float", ()


def _image_shape(columns: list[str]) -> tuple[int, int] | None:
    """(side, side) when the columns are exactly pixel0 … pixelN-1 with N a square; else None."""
    if not columns or not all(_PIXEL.fullmatch(c) for c in columns):
        return None
    side = math.isqrt(len(columns))
    if side * side != len(columns) or columns != [f"pixel{i}" for i in range(len(columns))]:
        return None
    return (side, side)


def _default_model(task: str, shape: tuple[int, int] | None) -> str:
    if shape is not None:
        return "knn"
    return "blend"
