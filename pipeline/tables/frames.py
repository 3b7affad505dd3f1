"""Table competitions: validated train/test frames, targets as class codes or values, and feature matrices."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError, UsageError
from pipeline.core.workspace import Workspace, atomic_path
from pipeline.ingest.csvfiles import file_key, read_table, shown
from pipeline.ingest.sources import require_fetched

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.core.dataset import Dataset
    from pipeline.tables.encoder import TableEncoder

BUILDERS = ("generic", "titanic", "titanic-plain", "houses")  # titanic: with woman-child group features


def fingerprint(comp: Competition, folder: Path, builder: str) -> str:
    """A key that changes when the data files, the builder or its code, or the described columns change."""
    from pipeline.tables import encoder, houses, titanic

    code = [Path(titanic.__file__)] if builder.startswith("titanic") else [Path(encoder.__file__)]
    if builder == "houses":
        code.append(Path(houses.__file__))
    described = "|".join(",".join(names) for names in (comp.date_columns, comp.dropped_columns))
    return file_key(f"{builder}|{described}", folder / comp.train_file, folder / comp.test_file, *code)


# past it linear solvers overflow (scikit-learn's ridge at 1e38, its coordinate descent at 3e38); 1e30 fits every model
TARGET_MAX = 1e30


def targets(comp: Competition, column: pd.Series, name: str) -> np.ndarray:
    """Train targets: int64 class codes (indices into comp.classes) or float64 values; fail naming the bad row."""
    import pandas as pd

    missing = column.isna().to_numpy()
    if missing.any():
        raise DataError(f"{name}: row {int(missing.argmax()) + 1}, column {comp.target_column}: missing value "
                        "(every training row needs its target)")
    if column.dtype.kind == "f" and comp.is_classification and (column % 1 == 0).all():
        column = column.astype("int64")  # pandas reads 0/1 as floats when it also saw text or gaps
    text = column.astype(str).str.strip()
    if comp.is_classification:
        lookup = {c: i for i, c in enumerate(comp.classes)}
        if comp.labels == "bool":  # pandas reads True/False as booleans; kc's classes are the words
            lookup |= {"true": 1, "false": 0, "TRUE": 1, "FALSE": 0}
        codes = text.map(lookup)
        bad = codes.isna().to_numpy()
        if bad.any():
            row = int(bad.argmax()) + 1
            cell = "missing value" if column.isna().iloc[row - 1] else f"'{shown(text.iloc[row - 1])}'"
            raise DataError(f"{name}: row {row}, column {comp.target_column}: {cell} is not one of "
                            f"{', '.join(comp.classes)}")
        return codes.to_numpy(np.int64)
    values = pd.to_numeric(text.where(text.str.isascii()), errors="coerce").to_numpy(np.float64)
    bad = ~comp.scorer.valid_values(values)
    if bad.any():
        row = int(bad.argmax()) + 1
        raise DataError(f"{name}: row {row}, column {comp.target_column}: '{shown(text.iloc[row - 1])}' is not "
                        f"{comp.scorer.value_rule}")
    huge = np.abs(values) > TARGET_MAX
    if huge.any():
        row = int(huge.argmax()) + 1
        raise DataError(f"{name}: row {row}, column {comp.target_column}: '{shown(text.iloc[row - 1])}' is beyond "
                        "±1e30, past which kc's models overflow: scale the target down")
    return values


def ids(comp: Competition, column: pd.Series, name: str) -> np.ndarray:
    """Test ids as written (int64 or str), checked: present, unique, integers when the competition's ids are."""
    text = column.astype(str).str.strip()
    bad = (column.isna() | (text == "")).to_numpy()
    if comp.id_type == "int":
        bad = bad | ~text.str.fullmatch(r"-?[0-9]{1,18}").to_numpy(dtype=bool)
    if bad.any():
        row = int(bad.argmax()) + 1
        raise DataError(f"{name}: row {row}, column {comp.id_column}: '{shown(text.iloc[row - 1])}' is not a valid id"
                        f"{' (an integer)' if comp.id_type == 'int' else ''}")
    twice = text.duplicated().to_numpy()
    if twice.any():
        row = int(twice.argmax()) + 1
        raise DataError(f"{name}: row {row}, column {comp.id_column}: id '{shown(text.iloc[row - 1])}' appears twice")
    return text.astype(np.int64).to_numpy() if comp.id_type == "int" else text.to_numpy(dtype=object)


def _builder(comp: Competition, features: str | None) -> str:
    builder = features or comp.features
    if builder not in BUILDERS:
        raise UsageError(f"--features {builder}: expected one of {', '.join(BUILDERS)}")
    if builder.startswith("titanic") and comp.slug != "titanic":
        raise UsageError(f"--features {builder} is Titanic's own builder; {comp.slug} takes generic")
    return builder


def load(comp: Competition, ws: Workspace, features: str | None = None, cached: bool = True) -> Dataset:
    """The model-ready dataset with the competition's (or the chosen) feature builder: mapped from the cache `kc
    convert` wrote when it is current (and `cached`), else from the validated CSVs."""
    from pipeline.core.dataset import Dataset

    builder = _builder(comp, features)
    folder = require_fetched(comp, ws)
    key = fingerprint(comp, folder, builder)
    if builder.startswith("titanic"):
        return _titanic(comp, folder, builder, key)
    from pipeline.tables import cache
    from pipeline.tables.encoder import TableEncoder

    if cached and (found := cache.read(comp, ws, builder, key)) is not None:
        return found

    train = _train_table(comp, folder, builder)
    test = functools.partial(_unchanged, comp, folder, builder, key, _test_table)  # read when first encoded
    y = targets(comp, train[comp.target_column], comp.train_file) if not comp.targets else \
        np.column_stack([targets(comp.for_target(t), train[t], comp.train_file) for t in comp.targets])  # (n, T)
    test_ids = _test_ids(comp, folder, test)
    # the id is no feature, unless it is a date (Bike Sharing's `datetime`); train-only columns are left out
    id_is_feature = comp.id_column in comp.date_columns
    drop = [*comp.target_columns, *comp.dropped_columns, *([] if id_is_feature else [comp.id_column])]
    # the description found the date columns once (kc fetch); hand edits to competition.json are honoured here
    dates = comp.date_columns if builder == "generic" else None
    if not [c for c in train.columns if c not in drop]:
        raise nothing_to_learn(comp)
    encoder = TableEncoder().fit(train, drop=[c for c in drop if c in train.columns], dates=dates)
    record: dict[str, Any] = {"builder": builder, "report": encoder.report(), "state": encoder.to_json()}
    rows = _handed_once(train, functools.partial(_unchanged, comp, folder, builder, key, _train_table))
    del train  # held by `rows` alone, until a matrix is built from it
    return Dataset.of(_encoded(encoder, rows, comp.train_file, True), y,
                      _encoded(encoder, test, comp.test_file, True), test_ids, key, encoder.names(scaled=True),
                      _encoded(encoder, rows, comp.train_file, False),
                      _encoded(encoder, test, comp.test_file, False), record)


def nothing_to_learn(comp: Competition) -> DataError:
    """The error for a train.csv that holds no column to learn from: only the id, the target and train-only columns."""
    held = [*([f"the id '{shown(comp.id_column)}'"] if comp.id_in_train else []),
            f"the targets {shown(', '.join(comp.targets))}" if comp.targets else
            f"the target '{shown(comp.target_column)}'",
            *([f"columns test.csv lacks ({shown(', '.join(comp.dropped_columns))})"] if comp.dropped_columns else [])]
    only = f"{', '.join(held[:-1])} and {held[-1]}" if len(held) > 1 else held[0]
    return DataError(f"{comp.train_file} holds nothing to learn from, only {only}: kc "
                     "learns from the columns train.csv and test.csv share, so add some to both (an id that packs "
                     "several fields, such as store_item_date, can be split into columns)")


def _handed_once(frame: pd.DataFrame, again: Callable[[], pd.DataFrame]) -> Callable[[], pd.DataFrame]:
    """The frame on the first call, a fresh read after: a dataset does not hold the rows it has already encoded.

    A tree model's run builds one matrix from train (raw); a second (scaled) one reads the file again. On 10,000,000
    rows the frame is 1.4 GB, as much again as the matrix and the fit together.
    """
    held = [frame]
    return lambda: held.pop() if held else again()


def _ids_as_text(comp: Competition) -> tuple[str, ...]:
    return (comp.id_column,) if comp.id_type == "str" else ()


def _built(frame: pd.DataFrame, builder: str) -> pd.DataFrame:
    """The frame with the builder's row-by-row columns (houses'); as read otherwise."""
    if builder != "houses":  # row-by-row columns only: no statistics, no labels
        return frame
    from pipeline.tables import houses

    return houses.build(frame)


def _unchanged(comp: Competition, folder: Path, builder: str, key: str,
               read: Callable[[Competition, Path, str], pd.DataFrame]) -> pd.DataFrame:
    """A table read after the dataset was made, refused if the competition's files have changed since."""
    if fingerprint(comp, folder, builder) != key:
        raise DataError(f"{comp.slug}'s files changed after kc read them (fetched or edited again): load the data "
                        "again, e.g. run the command again")
    return read(comp, folder, builder)


def _train_table(comp: Competition, folder: Path, builder: str) -> pd.DataFrame:
    return _built(read_table(folder / comp.train_file, as_written=_ids_as_text(comp)), builder)


def _test_table(comp: Competition, folder: Path, builder: str) -> pd.DataFrame:
    return _built(read_table(folder / comp.test_file, as_written=_ids_as_text(comp)), builder)


def _test_ids(comp: Competition, folder: Path, test: Callable[[], pd.DataFrame]) -> np.ndarray:
    """The test rows' ids: read alone from the id column (training needs no other test cell), or the row numbers."""
    if not comp.test_has_ids:
        return np.arange(1, len(test()) + 1, dtype=np.int64)
    column = read_table(folder / comp.test_file, as_written=_ids_as_text(comp), columns=(comp.id_column,))
    return ids(comp, column[comp.id_column], comp.test_file)


def _encoded(encoder: TableEncoder, frame: Callable[[], pd.DataFrame], name: str,
             scaled: bool) -> Callable[[], np.ndarray]:
    """How to build the frame's features when a model first asks for them, checked by `finite`."""
    return lambda: finite(encoder.transform(frame(), scaled=scaled), name, encoder.names(scaled))


def finite(X: np.ndarray, name: str, names: tuple[str, ...]) -> np.ndarray:
    """X; refused, naming the column, if any feature became inf or NaN (beyond float32, about ±3.4e38)."""
    with np.errstate(all="ignore"):
        bad = ~np.isfinite(X)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{name}: feature {names[col]} (row {row + 1}) is beyond what 32-bit features hold (about "
                        "±3.4e38), or its column's spread is: scale that column down or drop it")
    return X


def load_test(comp: Competition, ws: Workspace, record: dict[str, Any]) -> Dataset | None:
    """The test rows encoded by the encoder a run saved in its features.json: train is not read, nothing is refitted.

    None when the run's builder needs the train rows to build test features (Titanic's groups) or saved no encoder.
    The dataset holds no train rows; its fingerprint is the current files', to compare with the run's.
    """
    from pipeline.core.dataset import Dataset
    from pipeline.tables import cache
    from pipeline.tables.encoder import TableEncoder

    builder, state = record.get("builder"), record.get("state")
    if builder not in ("generic", "houses") or not isinstance(state, dict):
        return None
    folder = require_fetched(comp, ws)
    encoder = TableEncoder.from_json(state)
    no_rows = np.zeros((0, len(encoder.names(scaled=True))), np.float32)
    key = fingerprint(comp, folder, builder)
    found = cache.read(comp, ws, builder, key)
    if found is not None and found.features.get("state") == state:  # the run's encoder made the cached rows
        return Dataset.of(no_rows, np.zeros(0), found.X_test, found.test_ids, key, found.feature_names,
                          no_rows, found.X_test_raw, record, from_cache=True)
    test = _test_table(comp, folder, builder)
    test_ids = ids(comp, test[comp.id_column], comp.test_file) if comp.test_has_ids else \
        np.arange(1, len(test) + 1, dtype=np.int64)
    rows = _handed_once(test, functools.partial(_unchanged, comp, folder, builder, key, _test_table))
    del test
    return Dataset.of(no_rows, np.zeros(0), _encoded(encoder, rows, comp.test_file, True), test_ids,
                      key, encoder.names(scaled=True), no_rows,
                      _encoded(encoder, rows, comp.test_file, False), record)


def _titanic(comp: Competition, folder: Path, builder: str, key: str) -> Dataset:
    """Titanic's dataset: X and X_test hold the group features of a fit on all train rows; each fit redoes them."""
    import pandas as pd

    from pipeline.core.dataset import Dataset
    from pipeline.tables import titanic as titanic

    train, test = titanic.load_titanic(comp, folder)
    groups = titanic.BUILDERS[builder]
    f_train, f_test = titanic.build_features(train, test, groups)
    y = targets(comp, train[comp.target_column].astype("Int64"), comp.train_file)
    names = tuple(f_train.columns)
    X, X_test = (finite(f.to_numpy(np.float32), n, names) for f, n in ((f_train, comp.train_file),
                                                                         (f_test, comp.test_file)))
    frame = pd.concat([train.drop(columns=[comp.target_column]), test], ignore_index=True)
    fit = titanic.FitGroups(frame, y.astype(np.float64), groups) if groups else None
    record = {"builder": builder, "columns": list(f_train.columns), "groups": list(groups),
              "fit_columns": fit.names if fit else [],
              "fit": "fit_columns are recomputed for every fit from its training rows' labels (leave-one-out); "
                     "test rows use all train labels"}
    return Dataset.of(X, y, X_test, ids(comp, test[comp.id_column].astype("Int64"), comp.test_file), key,
                      tuple(f_train.columns), features=record, fit_columns=fit)


def convert(comp: Competition, ws: Workspace, force: bool = False) -> Dataset:
    """Build the feature matrices once: cache them for train and submit (generic and houses builders) and write
    them to `derived/` as parquet (with the builder's report) to look at; reuse a current cache unless `force`."""
    from pipeline.tables import cache

    data = load(comp, ws, cached=not force)
    if data.from_cache and _looked_at(ws.cache_dir(comp.slug), data.fingerprint):
        return data
    if not data.from_cache and data.features["builder"] in cache.CACHED:
        data = dataclasses.replace(cache.store(comp, ws, data), from_cache=False)  # mapped, but written just now
    import pandas as pd

    folder = ws.cache_dir(comp.slug)
    for name, X in (("train", data.X), ("test", data.X_test)):
        with atomic_path(folder / f"features_{name}.parquet", suffix=".parquet") as tmp:
            pd.DataFrame(X, columns=list(data.feature_names)).to_parquet(tmp, index=False)
    with atomic_path(folder / "features.json") as tmp:
        tmp.write_text(json.dumps({"fingerprint": data.fingerprint, "columns": list(data.feature_names),
                                   **{k: v for k, v in data.features.items() if k != "state"}}, indent=2))
    return data


def _looked_at(folder: Path, key: str) -> bool:
    """The parquet tables to look at were written from the data of this fingerprint."""
    try:
        written = json.loads((folder / "features.json").read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return False
    return written == key and all((folder / f"features_{name}.parquet").is_file() for name in ("train", "test"))
