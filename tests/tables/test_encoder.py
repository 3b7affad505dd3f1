import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import DataError, UsageError
from pipeline.tables.encoder import TableEncoder

HOUSE_PRICES = Path(__file__).parents[1] / "fixtures/house-prices-advanced-regression-techniques"


def column(encoder: TableEncoder, matrix: np.ndarray, name: str, scaled: bool) -> np.ndarray:
    """The named feature column of a transform output."""
    return matrix[:, encoder.names(scaled).index(name)]


def csv(content: str) -> pd.DataFrame:
    """A frame read the way Kaggle files are read: pandas' default type inference."""
    return pd.read_csv(io.StringIO(content))


def test_numeric_imputed_with_train_median_and_flag():
    train = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0, 6.0]})
    test = pd.DataFrame({"x": [np.nan, 100.0, 200.0]})
    encoder = TableEncoder().fit(train)
    assert encoder.names(scaled=False) == ("x", "x_missing")
    assert encoder.report()["imputed"] == ["x"]
    assert encoder.report()["log"] == []
    np.testing.assert_array_equal(encoder.transform(train, scaled=False), [[1, 0], [2, 0], [3, 1], [4, 0], [6, 0]])
    # the test row's gap gets the train median (3), not the test median (150)
    np.testing.assert_array_equal(encoder.transform(test, scaled=False), [[3, 1], [100, 0], [200, 0]])
    filled = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    scaled = encoder.transform(test, scaled=True)
    assert scaled[0, 0] == pytest.approx((3 - filled.mean()) / filled.std())
    assert scaled[1, 0] == pytest.approx((6 - filled.mean()) / filled.std())  # clipped into the train range

    state = json.dumps(encoder.to_json())
    before = encoder.transform(test, scaled=True)
    changed = test.assign(x=[np.nan, 1e6, 200.0])
    after = encoder.transform(changed, scaled=True)
    assert json.dumps(encoder.to_json()) == state  # transforming test rows learns nothing
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])


def test_skewed_column_is_logged_only_in_the_scaled_variant():
    raw = np.array([1.0, 1, 2, 2, 3, 3, 4, 5, 10, 30, 100, 1000])
    train = pd.DataFrame({"skewed": raw, "even": np.arange(12.0), "signed": raw * np.where(raw > 3, 1, -1)})
    encoder = TableEncoder().fit(train)
    assert encoder.report()["log"] == ["skewed"]  # "signed" is as skewed, but has numbers below 0
    assert encoder.names(scaled=True)[0] == "log1p(skewed)"
    assert encoder.names(scaled=False)[0] == "skewed"
    np.testing.assert_allclose(column(encoder, encoder.transform(train, scaled=False), "skewed", False), raw)
    logged = np.log1p(raw)
    expected = (logged - logged.mean()) / logged.std()
    got = column(encoder, encoder.transform(train, scaled=True), "log1p(skewed)", True)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_scaled_numbers_have_mean_0_std_1_on_train():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({
        "a": rng.normal(50, 10, 200),
        "b": np.where(rng.random(200) < 0.2, np.nan, rng.exponential(3, 200)),
        "c": rng.integers(0, 7, 200),
        "only": [5.0 if i % 4 else np.nan for i in range(200)],  # one value plus gaps: std 0, kept for its flag
    })
    encoder = TableEncoder().fit(train)
    matrix = encoder.transform(train, scaled=True)
    for name in ("a", "log1p(b)", "c"):
        values = column(encoder, matrix, name, True).astype(np.float64)
        assert abs(values.mean()) < 1e-5 and values.std() == pytest.approx(1, abs=1e-5), name
    np.testing.assert_array_equal(column(encoder, matrix, "only", True), 0)
    np.testing.assert_array_equal(column(encoder, matrix, "only_missing", True), train["only"].isna())


def test_onehot_with_missing_category_and_unseen_test_value():
    train = pd.DataFrame({"colour": ["red", "blue", "red", None, "green"], "n": [1, 2, 3, 4, 5]})
    test = pd.DataFrame({"colour": ["blue", "purple", None], "n": [1, 2, 3]})
    encoder = TableEncoder().fit(train)
    assert encoder.report()["onehot"] == ["colour"]
    names = encoder.names(scaled=True)
    assert names[:4] == ("colour=blue", "colour=green", "colour=red", "colour=<missing>")
    expected = [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    np.testing.assert_array_equal(encoder.transform(test, scaled=True)[:, :4], expected)
    np.testing.assert_array_equal(encoder.transform(test, scaled=False)[:, :4], expected)


def test_a_cell_reading_like_the_missing_category_shares_its_one_column():
    train = pd.DataFrame({"colour": ["red", "<missing>", None, "blue"], "n": [1, 2, 3, 4]})
    encoder = TableEncoder().fit(train)
    assert [n for n in encoder.names(scaled=False) if n.startswith("colour")] == [
        "colour=<missing>", "colour=blue", "colour=red"]
    np.testing.assert_array_equal(encoder.transform(train, scaled=False)[:, :3], [[0, 0, 1], [1, 0, 0], [1, 0, 0],
                                                                                  [0, 1, 0]])


def test_high_cardinality_text_is_frequency_encoded_or_dropped():
    tickets = [f"T{i // 2}" for i in range(38)] + ["T0", None]  # T0 three times, a gap, 18 pairs
    train = pd.DataFrame({"ticket": tickets, "name": [f"Person {i}" for i in range(40)], "n": range(40)})
    encoder = TableEncoder(max_onehot=5).fit(train)
    report = encoder.report()
    assert report["frequency"] == ["ticket"]
    assert report["onehot"] == []
    assert [entry.split(":")[0] for entry in report["dropped"]] == ["name"]
    assert "nearly unique" in report["dropped"][0]
    assert "name" not in " ".join(encoder.names(scaled=True))
    test = pd.DataFrame({"ticket": ["T0", "T5", "T999", None], "name": ["a", "b", "c", "d"], "n": [1, 2, 3, 4]})
    got = column(encoder, encoder.transform(test, scaled=False), "ticket_frequency", False)
    np.testing.assert_allclose(got, [3 / 40, 2 / 40, 0, 1 / 40])


def test_max_frequency_keeps_only_the_most_common_values():
    train = pd.DataFrame({"code": ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2, "n": range(14)})
    encoder = TableEncoder(max_onehot=2, max_frequency=2).fit(train)
    test = pd.DataFrame({"code": ["a", "b", "c", "d"], "n": range(4)})
    got = column(encoder, encoder.transform(test, scaled=False), "code_frequency", False)
    np.testing.assert_allclose(got, [5 / 14, 4 / 14, 0, 0])


def test_json_round_trip_gives_identical_output():
    rng = np.random.default_rng(1)
    n = 60
    train = pd.DataFrame({
        "Id": range(n),
        "price": rng.exponential(100, n) + np.where(rng.random(n) < 0.1, np.nan, 0),
        "rooms": rng.integers(1, 6, n),
        "zone": rng.choice(["RL", "RM", "FV", None], n),
        "vip": rng.choice([True, False], n),
        "ticket": [f"T{i % 25}" for i in range(n)],
        "y": rng.normal(size=n),
    })
    test = train.drop(columns="y").assign(zone=rng.choice(["RL", "C (all)", None], n), rooms=rng.integers(0, 9, n))
    encoder = TableEncoder(max_onehot=10).fit(train, drop=["Id", "y"])
    assert {"numeric", "log", "onehot", "boolean", "frequency"} <= {k for k, v in encoder.report().items() if v}
    loaded = TableEncoder.from_json(json.loads(json.dumps(encoder.to_json())))
    assert loaded.max_onehot == 10
    assert loaded.report() == encoder.report()
    for scaled in (True, False):
        assert loaded.names(scaled) == encoder.names(scaled)
        np.testing.assert_array_equal(loaded.transform(test, scaled), encoder.transform(test, scaled))


def test_no_nan_when_test_has_gaps_train_did_not():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 9.0], "kind": ["a", "b", "a", "b"], "ok": ["yes", "no", "no", "yes"]})
    test = pd.DataFrame({"x": [np.nan, np.inf, 2.0], "kind": [None, "a", "c"], "ok": [None, "yes", "maybe"]})
    encoder = TableEncoder().fit(train)
    assert not any(name.endswith("_missing") for name in encoder.names(scaled=True))
    for scaled in (True, False):
        matrix = encoder.transform(test, scaled)
        assert matrix.dtype == np.float32 and matrix.shape == (3, len(encoder.names(scaled)))
        assert np.isfinite(matrix).all()
    np.testing.assert_array_equal(column(encoder, encoder.transform(test, False), "x", False), [2.5, 2.5, 2.0])


def test_true_false_text_is_one_01_column():
    train = csv("flag,answer,n\nTrue,yes,1\nFalse,No,2\n,YES,3\nTrue,no,4\nTrue,yes,5\n")
    assert train["flag"].dtype == object  # the gap stops pandas from reading booleans
    encoder = TableEncoder().fit(train)
    assert encoder.report()["boolean"] == ["flag", "answer"]
    assert encoder.names(scaled=True) == ("flag", "flag_missing", "answer", "n")
    matrix = encoder.transform(train, scaled=True)
    np.testing.assert_array_equal(matrix[:, 0], [1, 0, 1, 1, 1])  # the gap gets the common value
    np.testing.assert_array_equal(matrix[:, 1], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(matrix[:, 2], [1, 0, 1, 0, 1])
    as_bool = TableEncoder().fit(pd.DataFrame({"flag": [True, False, True]}))  # bool dtype, no gaps
    assert as_bool.names(scaled=True) == ("flag",)
    np.testing.assert_array_equal(as_bool.transform(pd.DataFrame({"flag": ["False", True]}), True), [[0], [1]])


def test_stray_text_in_a_number_column_is_numeric():
    train = csv("size\n" + "\n".join(["10", "20", "30", "40", "50", "n/a?", "70", "80", "90", "100", "110"]) + "\n")
    assert not pd.api.types.is_numeric_dtype(train["size"])
    encoder = TableEncoder().fit(train)
    assert encoder.report()["numeric"] == ["size"]
    matrix = encoder.transform(train, scaled=False)
    assert matrix[5].tolist() == [60.0, 1.0]  # the stray cell is a gap: median (50 + 70) / 2, flagged
    mostly_text = TableEncoder().fit(pd.DataFrame({"code": ["1", "2", "A", "B", "C"]}))
    assert mostly_text.report()["onehot"] == ["code"]


def test_same_input_gives_same_columns():
    rng = np.random.default_rng(2)
    tickets = [f"T{i % 20}" for i in range(50)]
    train = pd.DataFrame({"b": rng.choice(list("xyz"), 50), "a": rng.normal(size=50), "t": tickets})
    first = TableEncoder(max_onehot=5).fit(train)
    again = TableEncoder(max_onehot=5).fit(train.sample(frac=1, random_state=3))
    assert first.names(True) == again.names(True)
    assert first.names(True)[:3] == ("b=x", "b=y", "b=z")  # source column order, categories sorted
    assert json.dumps(first.to_json()["encodings"][2]) == json.dumps(again.to_json()["encodings"][2])


def test_errors():
    with pytest.raises(DataError, match="no rows"):
        TableEncoder().fit(pd.DataFrame({"x": []}))
    with pytest.raises(DataError, match="no usable feature columns") as info:
        TableEncoder().fit(pd.DataFrame({"Id": [1, 2, 3], "same": ["a", "a", "a"], "y": [0, 1, 0]}), drop=["Id", "y"])
    assert "same: constant" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DataError, match="no column 'target' to drop"):
        TableEncoder().fit(pd.DataFrame({"x": [1, 2]}), drop=["target"])
    with pytest.raises(UsageError, match="not fitted"):
        TableEncoder().transform(pd.DataFrame({"x": [1, 2]}), scaled=True)
    encoder = TableEncoder().fit(pd.DataFrame({"x": [1, 2], "z": [3, 4]}))
    with pytest.raises(DataError, match="lacks column 'z'"):
        encoder.transform(pd.DataFrame({"x": [1, 2]}), scaled=True)
    with pytest.raises(DataError, match="malformed"):
        TableEncoder.from_json({"settings": {}})


def test_house_prices_fixture():
    train = pd.read_csv(HOUSE_PRICES / "train.csv")
    test = pd.read_csv(HOUSE_PRICES / "test.csv")
    submission = pd.read_csv(HOUSE_PRICES / "sample_submission.csv")
    assert len(train) == 200 and len(test) == 100
    assert submission["Id"].tolist() == test["Id"].tolist()
    encoder = TableEncoder().fit(train, drop=["Id", "SalePrice"])
    for scaled in (True, False):
        x_train, x_test = encoder.transform(train, scaled), encoder.transform(test, scaled)
        assert x_train.shape == (200, len(encoder.names(scaled))) and x_test.shape[1] == x_train.shape[1]
        assert np.isfinite(x_train).all() and np.isfinite(x_test).all()
    report = encoder.report()
    assert "Neighborhood" in report["onehot"] + report["frequency"]
    assert {"LotArea", "GrLivArea", "OverallQual"} <= set(report["numeric"])
    assert "LotFrontage" in report["imputed"] and "LotArea" in report["log"]
    assert "CentralAir" in report["boolean"]  # Y/N
    reported = tuple(entry for entries in report.values() for entry in entries)
    everything = " ".join(encoder.names(True) + encoder.names(False) + reported)
    assert "Id" not in everything.split() and "SalePrice" not in everything
    sources = {name for names in report.values() for name in names if ":" not in name}
    dropped = {entry.split(":")[0] for entry in report["dropped"]}
    assert sources | dropped == set(train.columns) - {"Id", "SalePrice"}


def test_declared_date_columns_are_the_one_answer():
    when = [str(pd.Timestamp("2011-01-01") + pd.Timedelta(hours=7 * i)) for i in range(40)]
    train = pd.DataFrame({"when": when, "x": range(40)})
    assert "when_hour" in TableEncoder().fit(train, dates=("when",)).names(scaled=False)
    # the description found no dates here (or a hand edit removed them): the column is not re-detected
    assert "when_hour" not in TableEncoder().fit(train, dates=()).report()["date"]
    assert TableEncoder().fit(train, dates=()).report()["date"] == []


def test_a_declared_date_column_without_dates_is_a_one_line_error():
    train = pd.DataFrame({"when": ["red", "blue"] * 10, "x": range(20)})
    with pytest.raises(DataError, match="'when' is listed in competition.json's date_columns"):
        TableEncoder().fit(train, dates=("when",))


@pytest.mark.parametrize(("cells", "parts"), [
    ([f"{1990 + i}-01-01" for i in range(30)], ["year", "elapsed"]),  # yearly: the weekday of January 1st is noise
    ([f"{1990 + i}-03-01" for i in range(30)], ["year", "elapsed"]),  # day of year would only flag leap years
    ([f"{2000 + i // 12}-{i % 12 + 1:02d}-01" for i in range(30)], ["year", "month", "elapsed"]),
    ([str(pd.Timestamp("2011-01-01") + pd.Timedelta(days=3 * i))[:10] for i in range(30)],
     ["month", "day", "weekday", "dayofyear", "elapsed"]),  # daily dates (all in 2011) keep their weekday
])
def test_dates_keep_a_weekday_and_day_of_year_only_when_their_day_varies(cells, parts):
    names = TableEncoder().fit(pd.DataFrame({"when": cells, "x": range(30)}), dates=("when",)).names(scaled=False)
    assert [n.removeprefix("when_") for n in names if n.startswith("when_")] == parts
