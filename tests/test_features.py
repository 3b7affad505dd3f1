import json

import numpy as np
import pandas as pd
import pytest

from pipeline import competitions, dataset, features
from pipeline.errors import DataError
from pipeline.workspace import Workspace

TITANIC = competitions.get("titanic")


def test_titles():
    assert features.title_of("Braund, Mr. Owen Harris") == "Mr"
    assert features.title_of("Cumings, Mrs. John Bradley (Florence Briggs Thayer)") == "Mrs"
    assert features.title_of("Aubart, Mme. Leontine Pauline") == "Mrs"
    assert features.title_of("Rothes, the Countess. of (Lucy Noel Martha Dyer-Edwards)") == "Rare"
    assert features.title_of("Uruchurtu, Don. Manuel E") == "Rare"


def test_feature_table_uses_train_statistics_only(fetched):
    folder = fetched / "competitions/titanic"
    train, test = features.load_titanic(TITANIC, folder)
    f_train, f_test = features.build_features(train, test)
    assert list(f_train.columns) == list(f_test.columns)
    assert len(f_train) == 300 and len(f_test) == 100
    assert not f_train.isna().any().any() and not f_test.isna().any().any()
    assert abs(f_train["Age"].mean()) < 1e-9 and abs(f_train["Age"].std() - 1) < 1e-9
    # changing test rows must not change a single train feature
    test2 = test.copy()
    test2["Age"] = 80.0
    test2["Fare"] = 500.0
    f_train2, _ = features.build_features(train, test2)
    assert f_train2.drop(columns=["TicketGroupSize"]).equals(f_train.drop(columns=["TicketGroupSize"]))


def test_age_is_imputed_by_title_median(fetched):
    train, test = features.load_titanic(TITANIC, fetched / "competitions/titanic")
    f_train, _ = features.build_features(train, test)
    master_median = train.loc[train["Name"].map(features.title_of) == "Master", "Age"].median()
    missing_master = train.index[(train["Name"].map(features.title_of) == "Master") & train["Age"].isna()]
    assert len(missing_master) > 0
    age = f_train["Age"]  # standardised with the train mean and std of the imputed ages
    raw_age = train["Age"].fillna(train["Name"].map(features.title_of).map(
        train.groupby(train["Name"].map(features.title_of))["Age"].median()))
    mean, std = raw_age.mean(), raw_age.std()
    assert np.allclose(age[missing_master] * std + mean, master_median)


def test_group_feature_hook_is_leave_one_out(fetched):
    train, test = features.load_titanic(TITANIC, fetched / "competitions/titanic")
    f_train, f_test = features.build_features(train, test, groups=["ticket-survival"])
    row = train.index[train["Ticket"].duplicated(keep=False)][0]
    mates = train.index[(train["Ticket"] == train.loc[row, "Ticket"]) & (train.index != row)]
    assert f_train.loc[row, "TicketGroupSurvival"] == pytest.approx(train.loc[mates, "Survived"].mean())
    assert set(f_test["TicketGroupKnown"].unique()) <= {0.0, 1.0}


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("Sex", "unknown", "train.csv: row 4, column Sex: 'unknown' is not male or female"),
        ("Age", "old", "train.csv: row 4, column Age: 'old' is not a number"),
        ("Survived", "2", "train.csv: row 4, column Survived: '2' is not 0 or 1"),
        ("Pclass", "", "train.csv: row 4, column Pclass: missing value"),
    ],
)
def test_bad_titanic_cells_are_named(fetched, column, value, message):
    path = fetched / "competitions/titanic/train.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[3, column] = value
    df.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        dataset.load_dataset(TITANIC, Workspace(fetched))
    assert str(err.value) == message


def test_titanic_header_is_checked(fetched):
    path = fetched / "competitions/titanic/test.csv"
    path.write_text(path.read_text().replace("Pclass", "Class", 1))
    with pytest.raises(DataError) as err:
        features.read_titanic_csv(path, features.TEST_COLUMNS)
    assert str(err.value) == ("test.csv: header does not match Titanic's columns (PassengerId, Pclass, Name, Sex, "
                              "Age, SibSp, Parch, Ticket, Fare, Cabin, Embarked)")


def test_titanic_dataset_and_converted_tables(fetched):
    ws = Workspace(fetched)
    first = dataset.load_dataset(TITANIC, ws)
    second = dataset.load_dataset(TITANIC, ws)
    assert first.fingerprint == second.fingerprint
    assert np.array_equal(second.X, first.X) and np.array_equal(second.y, first.y)
    assert first.X.shape == (300, len(first.feature_names)) and first.X.dtype == np.float32
    assert first.y.dtype == np.int64 and set(first.y) == {0, 1}
    assert list(first.test_ids[:3]) == [892, 893, 894] and len(first.test_ids) == 100
    assert first.features["builder"] == "titanic"
    train, test = features.load_titanic(TITANIC, fetched / "competitions/titanic")
    f_train, _ = features.build_features(train, test)
    assert first.feature_names == tuple(f_train.columns)
    assert np.array_equal(first.y, train["Survived"].to_numpy())
    converted = dataset.convert(TITANIC, ws)
    derived = fetched / "competitions/titanic/derived"
    saved = pd.read_parquet(derived / "features_train.parquet")
    assert list(saved.columns) == list(first.feature_names)
    assert np.array_equal(saved.to_numpy(np.float32), first.X)
    assert len(pd.read_parquet(derived / "features_test.parquet")) == 100
    record = json.loads((derived / "features.json").read_text())
    assert record["builder"] == "titanic" and record["fingerprint"] == converted.fingerprint
    assert record["columns"] == list(first.feature_names)
