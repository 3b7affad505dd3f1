import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import install

from pipeline.core import competitions, dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.tables import frames

TITANIC = competitions.get("titanic")
HOUSES = competitions.get("house-prices")
BOOLS = dataclasses.replace(TITANIC, slug="bools", labels="bool", classes=("False", "True"), aliases=(),
                            class_names=())


def test_class_targets_become_codes_in_class_order():
    assert frames.targets(TITANIC, pd.Series([1, 0, 1]), "train.csv").tolist() == [1, 0, 1]
    codes = frames.targets(BOOLS, pd.Series([True, False, "True "]), "train.csv")
    assert codes.dtype == np.int64 and codes.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("comp", "values", "message"),
    [
        (TITANIC, [0, 1, 2], "train.csv: row 3, column Survived: '2' is not one of 0, 1"),
        (TITANIC, [0, None, 1], "train.csv: row 2, column Survived: missing value (every training row needs its "
                                "target)"),
        (HOUSES, [100.0, 0.0], "train.csv: row 2, column SalePrice: '0.0' is not a positive number (the metric "
                               "takes logs)"),
        (HOUSES, ["100", "cheap"], "train.csv: row 2, column SalePrice: 'cheap' is not a positive number (the "
                                   "metric takes logs)"),
        (dataclasses.replace(HOUSES, slug="any-values", metric="rmse", aliases=()), [1.0, float("inf")],
         "train.csv: row 2, column SalePrice: 'inf' is not a finite number"),
        (dataclasses.replace(HOUSES, slug="any-values", metric="rmse", aliases=()), ["1e30", "-3e38"],
         "train.csv: row 2, column SalePrice: '-3e38' is beyond ±1e30, past which kc's models overflow: scale the "
         "target down"),
    ],
)
def test_bad_targets_are_named(comp, values, message):
    with pytest.raises(DataError) as err:
        frames.targets(comp, pd.Series(values), "train.csv")
    assert str(err.value) == message


def test_values_stay_values():
    assert frames.targets(HOUSES, pd.Series(["208500", "181500.5"]), "train.csv").tolist() == [208500.0, 181500.5]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["1", "x", "3"], "test.csv: row 2, column PassengerId: 'x' is not a valid id (an integer)"),
        (["1", "", "3"], "test.csv: row 2, column PassengerId: '' is not a valid id (an integer)"),
        (["1", "2", "1"], "test.csv: row 3, column PassengerId: id '1' appears twice"),
    ],
)
def test_bad_test_ids_are_named(values, message):
    with pytest.raises(DataError) as err:
        frames.ids(TITANIC, pd.Series(values), "test.csv")
    assert str(err.value) == message


def test_string_ids_stay_strings():
    comp = dataclasses.replace(TITANIC, slug="named", id_type="str", aliases=())
    assert frames.ids(comp, pd.Series([" a7", "b"]), "test.csv").tolist() == ["a7", "b"]


def test_feature_builder_choices(fetched):
    ws = Workspace(fetched)
    generic = dataset.load_dataset(TITANIC, ws, features="generic")
    assert generic.features["builder"] == "generic" and generic.X.shape[0] == 300
    assert generic.X_raw is not None and generic.X_raw.shape[0] == 300
    assert generic.test_ids.tolist() == list(range(892, 992))
    with pytest.raises(UsageError) as err:
        dataset.load_dataset(TITANIC, ws, features="deep")
    assert str(err.value) == "--features deep: expected one of generic, titanic, titanic-plain, houses"
    plain, groups = (dataset.load_dataset(TITANIC, ws, features=f) for f in ("titanic-plain", "titanic"))
    assert plain.fit_columns is None and groups.fit_columns is not None
    assert groups.feature_names == (*plain.feature_names, "WCGKnown", "WCGSurvival", "WCGAllDied", "WCGAllLived")
    assert np.array_equal(groups.X[:, : plain.X.shape[1]], plain.X)  # the label-free columns are the same
    assert plain.fingerprint != groups.fingerprint


def test_house_prices_loads_with_the_generic_builder(workspace):
    install(workspace, "house-prices")
    ws = Workspace(workspace)
    data = dataset.load_dataset(HOUSES, ws)
    train = pd.read_csv(workspace / "competitions" / HOUSES.slug / "train.csv")
    assert data.y.dtype == np.float64 and np.array_equal(data.y, train["SalePrice"].to_numpy(np.float64))
    assert len(data.X) == len(train) and len(data.X_test) == len(data.test_ids)
    assert "SalePrice" not in data.feature_names and "Id" not in data.feature_names
    assert np.isfinite(data.X).all() and np.isfinite(data.X_test).all()
    with pytest.raises(UsageError) as err:
        dataset.load_dataset(HOUSES, ws, features="titanic")
    assert str(err.value) == (f"--features titanic is Titanic's own builder; {HOUSES.slug} takes generic")
    with pytest.raises(UsageError) as err:
        dataset.load_dataset(HOUSES, ws, features="titanic-plain")
    assert str(err.value) == (f"--features titanic-plain is Titanic's own builder; {HOUSES.slug} takes generic")
    assert data.fit_columns is None  # the generic builder computes nothing from labels


def test_a_second_matrix_reads_the_rows_again_unless_the_files_changed(workspace):
    install(workspace, "house-prices")
    ws = Workspace(workspace)
    fresh = dataset.load_dataset(HOUSES, ws)
    X, X_raw = fresh.X, fresh.X_raw  # the first takes the frame load read; the second reads train.csv again
    again = dataset.load_dataset(HOUSES, ws)
    assert np.array_equal(again.X_raw, X_raw) and np.array_equal(again.X, X) and not np.array_equal(X, X_raw)
    changed = dataset.load_dataset(HOUSES, ws)
    assert changed.X_raw.shape == X_raw.shape
    train = workspace / "competitions" / HOUSES.slug / "train.csv"
    train.write_text("\n".join(train.read_text().splitlines()[:-5]) + "\n")  # five rows fewer, after the load
    with pytest.raises(DataError, match=f"{HOUSES.slug}'s files changed after kc read them"):
        _ = changed.X
    with pytest.raises(DataError, match=f"{HOUSES.slug}'s files changed after kc read them"):
        _ = changed.X_test  # test rows are read when first encoded, after the same check
