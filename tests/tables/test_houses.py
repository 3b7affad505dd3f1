import numpy as np
import pandas as pd
import pytest
from conftest import install

from pipeline.core import competitions, dataset
from pipeline.core.errors import DataError
from pipeline.core.workspace import Workspace
from pipeline.models import blend
from pipeline.tables import houses
from pipeline.training import records, scoring, splits, trainer

HOUSES = competitions.get("house-prices")
FIXTURE = "tests/fixtures/house-prices-advanced-regression-techniques"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """The fixture's 200 training rows, read as kc reads them."""
    from pathlib import Path

    from pipeline.ingest.csvfiles import read_table

    return read_table(Path(__file__).parents[2] / FIXTURE / "train.csv")


def test_quality_words_become_ranks_and_none_ranks_zero(table):
    rows = table.head(3).copy()
    rows["ExterQual"] = ["Ex", "Po", "TA"]
    rows["GarageQual"] = [np.nan, "Gd", "Fa"]  # no garage, good, fair
    rows["Functional"] = [np.nan, "Sal", "Min1"]  # blank: "assume typical"
    out = houses.build(rows)
    assert out["ExterQual_rank"].tolist() == [5, 1, 3]
    assert out["GarageQual_rank"].tolist() == [0, 4, 2]
    assert out["Functional_rank"].tolist() == [7, 0, 6]
    assert out["ExterQual"].tolist() == ["Ex", "Po", "TA"]  # the words stay too, for the one-hot columns
    assert out["MSSubClass"].tolist() == [f"MSSubClass{v}" for v in rows["MSSubClass"]]  # a code, not a number


def test_totals_and_ages_follow_the_data_description(table):
    row = table.iloc[[0]].copy()  # Id 1: 856 + 856 + 854 sq ft, 2 full + 1 half baths, 1 basement full bath
    row["BsmtHalfBath"] = np.nan  # blank counts as none
    out = houses.build(row).iloc[0]
    assert out["TotalSF"] == row["TotalBsmtSF"].iloc[0] + row["1stFlrSF"].iloc[0] + row["2ndFlrSF"].iloc[0]
    bath = row["FullBath"].iloc[0] + 0.5 * row["HalfBath"].iloc[0] + row["BsmtFullBath"].iloc[0]
    assert out["TotalBath"] == bath
    assert out["Age"] == row["YrSold"].iloc[0] - row["YearBuilt"].iloc[0]
    assert out["Sold"] == pytest.approx(row["YrSold"].iloc[0] + (row["MoSold"].iloc[0] - 1) / 12)
    assert out["QualSF"] == row["OverallQual"].iloc[0] * out["TotalSF"]
    assert out["Has2ndFlrSF"] == (row["2ndFlrSF"].iloc[0] > 0)


def test_every_row_is_built_from_itself_alone(table):
    """No statistics and no labels: a row's columns do not change with the other rows or with any price."""
    whole = houses.build(table)
    shuffled = table.sample(frac=1.0, random_state=0)
    shuffled["SalePrice"] = shuffled["SalePrice"].to_numpy()[::-1]  # every price moved to another house
    alone = houses.build(shuffled.iloc[:50]).drop(columns="SalePrice")
    pd.testing.assert_frame_equal(alone, whole.loc[alone.index].drop(columns="SalePrice"))


def test_a_table_without_the_columns_is_refused(table):
    with pytest.raises(DataError) as err:
        houses.build(table.drop(columns=["KitchenQual"]))
    assert str(err.value) == ("the table lacks column 'KitchenQual', which the House Prices builder reads; "
                              "use --features generic for another table")


def test_house_prices_loads_with_its_own_builder(workspace):
    install(workspace, "house-prices")
    ws = Workspace(workspace)
    data, generic = dataset.load_dataset(HOUSES, ws), dataset.load_dataset(HOUSES, ws, features="generic")
    assert data.features["builder"] == "houses" and generic.features["builder"] == "generic"
    assert "KitchenQual_rank" in data.feature_names and {"TotalSF", "log1p(TotalSF)"} & set(data.feature_names)
    assert "MSSubClass=MSSubClass60" in data.feature_names and "MSSubClass" not in data.feature_names
    assert data.fingerprint != generic.fingerprint
    assert np.array_equal(data.y, generic.y) and data.X.shape[0] == generic.X.shape[0]
    assert np.isfinite(data.X).all() and np.isfinite(data.X_test).all()


@pytest.mark.slow
def test_the_default_blend_never_sees_the_labels_it_is_scored_on(workspace, monkeypatch):
    """Out-of-fold: changing the prices of one fold's houses leaves that fold's predictions exactly as they were.

    The builder and the encoder read no labels; the blend's lasso drops outliers by its own training rows'
    residuals only. So the predictions for a fold can depend only on the other folds' prices.
    """
    fast = dict(blend.DEFAULTS["regression"][1][1], max_iter=50)
    monkeypatch.setitem(blend.DEFAULTS, "regression", (blend.DEFAULTS["regression"][0], ("sk-gbm", fast)))
    install(workspace, "house-prices")
    data = dataset.load_dataset(HOUSES, Workspace(workspace))
    parts = splits.folds(splits.strata(HOUSES, data.y), 5, 0)
    held = parts[2]

    def out_of_fold(prices: np.ndarray) -> np.ndarray:
        """Predictions for every row from the model fitted on the other folds, as `kc train --folds 5` makes them."""
        target, out = scoring.model_target(HOUSES, prices), np.zeros(len(prices))
        for part in parts:
            rest = np.setdiff1d(np.arange(len(prices)), part)
            model = trainer.build_model(HOUSES, records.TrainConfig(model="blend"))
            out[part] = model.fit(data.X[rest], target[rest]).predict(data.X[part])
        return out

    before = out_of_fold(data.y)
    y = data.y.copy()
    y[held] *= np.random.default_rng(0).uniform(0.2, 5.0, len(held))  # one fold's prices, scrambled
    y[held[:3]] *= 50  # and three of them absurd: the trimming would drop them if it could see them
    after = out_of_fold(y)
    assert np.array_equal(after[held], before[held])  # that fold's predictions: bit for bit the same
    others = np.setdiff1d(np.arange(len(y)), held)
    assert np.abs(after[others] - before[others]).min() > 0  # every other fold did learn from those prices
