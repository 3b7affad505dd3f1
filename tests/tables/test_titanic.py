import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.core import competitions, dataset
from pipeline.core.errors import DataError
from pipeline.core.workspace import Workspace
from pipeline.tables import titanic

TITANIC = competitions.get("titanic")


def test_titles():
    assert titanic.title_of("Braund, Mr. Owen Harris") == "Mr"
    assert titanic.title_of("Cumings, Mrs. John Bradley (Florence Briggs Thayer)") == "Mrs"
    assert titanic.title_of("Aubart, Mme. Leontine Pauline") == "Mrs"
    assert titanic.title_of("Rothes, the Countess. of (Lucy Noel Martha Dyer-Edwards)") == "Rare"
    assert titanic.title_of("Uruchurtu, Don. Manuel E") == "Rare"


def test_feature_table_uses_train_statistics_only(fetched):
    folder = fetched / "competitions/titanic"
    train, test = titanic.load_titanic(TITANIC, folder)
    f_train, f_test = titanic.build_features(train, test)
    assert list(f_train.columns) == list(f_test.columns)
    assert len(f_train) == 300 and len(f_test) == 100
    assert not f_train.isna().any().any() and not f_test.isna().any().any()
    assert abs(f_train["Age"].mean()) < 1e-9 and abs(f_train["Age"].std() - 1) < 1e-9
    # changing test rows must not change a single train feature
    test2 = test.copy()
    test2["Age"] = 80.0
    test2["Fare"] = 500.0
    f_train2, _ = titanic.build_features(train, test2)
    assert f_train2.drop(columns=["TicketGroupSize"]).equals(f_train.drop(columns=["TicketGroupSize"]))


def test_age_is_imputed_by_title_median(fetched):
    train, test = titanic.load_titanic(TITANIC, fetched / "competitions/titanic")
    f_train, _ = titanic.build_features(train, test)
    master_median = train.loc[train["Name"].map(titanic.title_of) == "Master", "Age"].median()
    missing_master = train.index[(train["Name"].map(titanic.title_of) == "Master") & train["Age"].isna()]
    assert len(missing_master) > 0
    age = f_train["Age"]  # standardised with the train mean and std of the imputed ages
    raw_age = train["Age"].fillna(train["Name"].map(titanic.title_of).map(
        train.groupby(train["Name"].map(titanic.title_of))["Age"].median()))
    mean, std = raw_age.mean(), raw_age.std()
    assert np.allclose(age[missing_master] * std + mean, master_median)


def test_group_feature_hook_is_leave_one_out(fetched):
    train, test = titanic.load_titanic(TITANIC, fetched / "competitions/titanic")
    f_train, f_test = titanic.build_features(train, test, groups=["ticket-survival"])
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
        titanic.read_titanic_csv(path, titanic.TEST_COLUMNS)
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
    assert first.features["builder"] == "titanic" and first.features["groups"] == ["woman-child"]
    train, test = titanic.load_titanic(TITANIC, fetched / "competitions/titanic")
    f_train, _ = titanic.build_features(train, test, ["woman-child"])
    assert first.feature_names == tuple(f_train.columns)
    assert first.features["fit_columns"] == list(f_train.columns[-4:]) == ["WCGKnown", "WCGSurvival", "WCGAllDied",
                                                                         "WCGAllLived"]
    # X holds the group features of a fit on every train row
    assert np.array_equal(first.for_fit(first.X, np.arange(300)), first.X)
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


def _passengers() -> pd.DataFrame:
    """Eight made-up passengers whose woman-child groups are known by hand."""
    rows = [("Ames, Mrs. Ann", "female", 3, "A/1231", 20.0, "S"),  # 0: Ames family
            ("Ames, Master. Bo", "male", 3, "A/1231", 20.0, "S"),  # 1: Ames family (a boy)
            ("Ames, Mr. Carl", "male", 3, "A/1231", 20.0, "S"),  # 2: a man: no group
            ("Berg, Miss. Dora", "female", 3, "A/1231", 20.0, "S"),  # 3: alone, joins her ticket-mates, the Ames
            ("Ames, Miss. Eve", "female", 1, "B7", 80.0, "C"),  # 4: another Ames, alone in first class
            ("Cole, Mrs. Fay", "female", 2, "C9", 10.0, "S"),  # 5: Cole family: tickets alike bar the last digit
            ("Cole, Miss. Gia", "female", 2, "C8", 10.0, "S"),  # 6: Cole family
            ("Dunn, Master. Hal", "male", 3, "D55", 7.0, "Q")]  # 7: a boy alone
    return pd.DataFrame(rows, columns=["Name", "Sex", "Pclass", "Ticket", "Fare", "Embarked"])


def test_woman_child_groups_by_hand():
    group = titanic.woman_child_groups(_passengers())
    assert group[0] == group[1] == group[3] != "" and group[5] == group[6] != "" and group[0] != group[5]
    assert (group[[2, 4, 7]] == "").all()


def test_woman_child_survival_by_hand():
    labels = pd.Series([1, 0, np.nan, 1, 1, 0, np.nan, 1])  # NaN: unknown to the fit (a test or validation row)
    f = titanic.woman_child_survival(_passengers(), labels)
    assert f["WCGKnown"].tolist() == [1, 1, 0, 1, 0, 0, 1, 0]
    assert f["WCGSurvival"].tolist() == [0.5, 1, 0, 0.5, 0, 0, 0, 0]  # row 0: its mates 1 and 3 fared 0 and 1
    assert f["WCGAllDied"].tolist() == [0, 0, 0, 0, 0, 0, 1, 0]
    assert f["WCGAllLived"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]


def _loop_survival(group: list[str], labels: list[float]) -> list[float]:
    """The survival rate of each row's labelled group-mates, by a plain loop (0 when none)."""
    out = []
    for i, g in enumerate(group):
        mates = [labels[j] for j in range(len(group)) if j != i and g and group[j] == g and labels[j] == labels[j]]
        out.append(sum(mates) / len(mates) if mates else 0.0)
    return out


def _fixture_groups(fetched):
    train, test = titanic.load_titanic(TITANIC, fetched / "competitions/titanic")
    frame = pd.concat([train.drop(columns=["Survived"]), test], ignore_index=True)
    return titanic.FitGroups(frame, train["Survived"].to_numpy(float), ("woman-child",)), train


def test_woman_child_survival_matches_a_loop(fetched):
    fit, train = _fixture_groups(fetched)
    rows = np.random.default_rng(0).permutation(len(train))[:200]
    seen = np.full(len(fit.frame), np.nan)
    seen[rows] = fit.labels[rows]
    block = fit(rows)
    assert block.shape == (300, 4) and block[:, 0].sum() >= 10  # enough rows with known group-mates to mean much
    expected = _loop_survival(titanic.woman_child_groups(fit.frame).tolist(), seen.tolist())[:300]
    assert np.allclose(block[:, 1], expected)


def test_a_fit_reads_only_the_labels_of_its_rows(fetched):
    fit, train = _fixture_groups(fetched)
    rows = np.random.default_rng(1).permutation(len(train))[:240]
    others = np.setdiff1d(np.arange(len(train)), rows)
    flipped = fit.labels.copy()
    flipped[others] = 1 - flipped[others]
    # every row's features (the fit's rows and the held-out ones alike) ignore the held-out labels
    assert np.array_equal(dataclasses.replace(fit, labels=flipped)(rows), fit(rows))
    flipped = fit.labels.copy()
    flipped[rows] = 1 - flipped[rows]  # the fit's own labels do matter: the check above could fail
    assert not np.array_equal(dataclasses.replace(fit, labels=flipped)(rows), fit(rows))


def test_a_rows_own_label_never_reaches_its_features(fetched):
    fit, train = _fixture_groups(fetched)
    everyone = np.arange(len(train))
    base = fit(everyone)
    grouped = np.flatnonzero(base[:, 0] == 1)  # rows with labelled group-mates
    assert len(grouped) >= 10
    for i in grouped:
        flipped = fit.labels.copy()
        flipped[i] = 1 - flipped[i]
        block = dataclasses.replace(fit, labels=flipped)(everyone)
        assert np.array_equal(block[i], base[i])
        assert not np.array_equal(block, base)  # its label reaches its group-mates' features


def test_titanic_columns_in_any_order_read_the_same(fetched):
    path = fetched / "competitions/titanic/test.csv"
    before = titanic.read_titanic_csv(path, titanic.TEST_COLUMNS)
    pd.read_csv(path, dtype=str, keep_default_na=False).iloc[:, ::-1].to_csv(path, index=False)  # Embarked first
    pd.testing.assert_frame_equal(titanic.read_titanic_csv(path, titanic.TEST_COLUMNS), before)
