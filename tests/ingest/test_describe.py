"""Competitions kc has never seen: described from their files, then run end to end through the CLI."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_through

from pipeline.core import competitions
from pipeline.core.errors import DataError, UsageError
from pipeline.ingest import describe
from pipeline.ingest.csvfiles import read_table


def spaceship(folder: Path, n: int = 120, m: int = 40) -> Path:
    """A small Spaceship-Titanic-like competition: string ids like 0013_01, True/False target."""
    rng = np.random.default_rng(0)

    def rows(count: int, start: int) -> pd.DataFrame:
        age = rng.integers(1, 80, count).astype(float)
        age[rng.random(count) < 0.1] = np.nan
        return pd.DataFrame({
            "PassengerId": [f"{start + i:04d}_01" for i in range(count)],
            "HomePlanet": rng.choice(["Earth", "Mars", "Europa"], count),
            "CryoSleep": rng.choice(["True", "False"], count),
            "Age": age,
            "Spend": rng.exponential(300, count).round(1),
        })

    train, test = rows(n, 1), rows(m, 5000)
    train["Transported"] = np.where((train["Spend"] < 200) | (train["HomePlanet"] == "Europa"), "True", "False")
    return _zip(folder, "spaceship-mini", train, test, "PassengerId", "Transported", "False")


def prices(folder: Path, n: int = 150, m: int = 30) -> Path:
    """A small house-price-like competition: integer ids, a positive float target."""
    rng = np.random.default_rng(1)

    def rows(count: int, start: int) -> pd.DataFrame:
        return pd.DataFrame({
            "Id": np.arange(start, start + count),
            "Area": rng.uniform(50, 300, count).round(1),
            "Rooms": rng.integers(1, 7, count),
            "Town": rng.choice(["north", "south", "east"], count),
        })

    train, test = rows(n, 1), rows(m, 1000)
    bonus = train["Town"].map({"north": 1.3, "south": 1.0, "east": 0.8})
    train["Price"] = (1000 * train["Area"] * bonus + 5000 * train["Rooms"] + rng.normal(0, 2000, n)).round(2)
    return _zip(folder, "prices-mini", train, test, "Id", "Price", "100000.0")


def _zip(folder: Path, slug: str, train: pd.DataFrame, test: pd.DataFrame, id_col: str, target: str,
         fill: str) -> Path:
    path = folder / f"{slug}.zip"
    sample = pd.DataFrame({id_col: test[id_col], target: fill})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train.csv", train.to_csv(index=False))
        zf.writestr("test.csv", test.to_csv(index=False))
        zf.writestr("sample_submission.csv", sample.to_csv(index=False))
        zf.writestr("notes.txt", "what the columns mean\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("make", [spaceship, prices])
def test_unknown_competition_end_to_end(kc, workspace, tmp_path, make):
    zipped = make(tmp_path)
    slug = zipped.stem
    fetched = kc("fetch", slug, "--from", zipped, ws=workspace)
    assert fetched.exit_code == 0, fetched.output
    assert f"kc described {slug} from its files" in fetched.stdout
    comp = competitions.get(slug, workspace)
    assert comp.extra_files == ("notes.txt",)
    for step in (["convert"], ["train", "--model", "linear"], ["train", "--model", "knn"], ["runs"], ["submit"]):
        result = kc(*step, ws=workspace)  # the only competition in the workspace: no slug needed
        assert result.exit_code == 0, (step, result.output)
    [csv] = (workspace / "submissions" / slug).glob("*.csv")
    assert kc("validate", slug, csv, ws=workspace).exit_code == 0
    written = pd.read_csv(csv, dtype=str)
    sample = pd.read_csv(workspace / "competitions" / slug / "sample_submission.csv", dtype=str)
    assert list(written.columns) == list(sample.columns)
    assert written.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()  # ids exactly as the sample, in order
    if comp.task == "binary":
        assert set(written.iloc[:, 1]) <= {"True", "False"}
    else:
        assert (written.iloc[:, 1].astype(float) > 0).all()


def test_spaceship_is_described_as_binary_with_string_ids(tmp_path):
    zipped = spaceship(tmp_path)
    folder = tmp_path / "files"
    zipfile.ZipFile(zipped).extractall(folder)
    comp = describe.infer("spaceship-mini", folder)
    assert (comp.id_column, comp.id_type, comp.target_column) == ("PassengerId", "str", "Transported")
    assert (comp.task, comp.labels, comp.classes, comp.metric) == ("binary", "bool", ("False", "True"), "accuracy")
    assert comp.modality == "tabular" and comp.features == "generic"


def test_prices_is_regression_scored_by_rmse_unless_told(tmp_path):
    zipped = prices(tmp_path)
    folder = tmp_path / "files"
    zipfile.ZipFile(zipped).extractall(folder)
    assert describe.infer("prices-mini", folder).metric == "rmse"
    comp = describe.infer("prices-mini", folder, metric="rmse-log")
    assert (comp.task, comp.labels, comp.id_type, comp.metric) == ("regression", "float", "int", "rmse-log")
    with pytest.raises(UsageError, match="metric 'accuracy' does not score regression tasks; use one of: rmse"):
        describe.infer("prices-mini", folder, metric="accuracy")


@pytest.mark.parametrize("in_test", [True, False])
def test_a_row_index_pandas_wrote_is_left_out_not_learnt(kc, workspace, tmp_path, in_test):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    train = pd.read_csv(folder / "train.csv").sort_values("Price").reset_index(drop=True)
    train.to_csv(folder / "train.csv")  # pandas' default: the row numbers first, under an empty header cell
    if in_test:
        pd.read_csv(folder / "test.csv").to_csv(folder / "test.csv")
    fetched = kc("fetch", "prices-mini", "--from", folder, ws=workspace)
    assert fetched.exit_code == 0, fetched.output
    assert "left out, row numbers pandas wrote (to_csv's index): Unnamed: 0" in fetched.stdout
    assert competitions.get("prices-mini", workspace).dropped_columns == ("Unnamed: 0",)
    out = run_through(kc, workspace, "prices-mini", "--model", "knn")  # the row number sorted by price: a leak
    assert out.columns.tolist() == ["Id", "Price"]
    run = next((workspace / "competitions/prices-mini/runs").iterdir())
    assert "Unnamed" not in (run / "features.json").read_text()


def test_a_blank_header_cell_names_the_same_column_everywhere_and_a_real_unnamed_column_stays(tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    train = pd.read_csv(folder / "train.csv").sort_values("Price").reset_index(drop=True)
    text = train.to_csv()
    (folder / "train.csv").write_text(" " + text)  # a blank cell of one space: pandas names it ' ', not Unnamed: 0
    assert describe.infer("prices-mini", folder).dropped_columns == ("Unnamed: 0",)
    assert "Unnamed: 0" in read_table(folder / "train.csv").columns
    kept = train.sample(frac=0.7, random_state=0).sort_values("Price")  # a subset's row numbers keep their gaps
    kept.to_csv(folder / "train.csv")
    assert describe.infer("prices-mini", folder).dropped_columns == ("Unnamed: 0",)
    renamed = train.rename(columns={"Area": "Unnamed: 0"})  # a measurement under pandas' name: a feature
    renamed.to_csv(folder / "train.csv", index=False)
    pd.read_csv(folder / "test.csv").rename(columns={"Area": "Unnamed: 0"}).to_csv(folder / "test.csv", index=False)
    assert describe.infer("prices-mini", folder).dropped_columns == ()


def test_a_metric_that_cannot_score_the_targets_is_refused_at_fetch(kc, workspace, tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    train = pd.read_csv(folder / "train.csv")
    train.loc[5, "Price"] = -300.0
    train.to_csv(folder / "train.csv", index=False)
    assert describe.infer("prices-mini", folder, metric="rmse").metric == "rmse"
    result = kc("fetch", "prices-mini", "--from", folder, "--metric", "rmsle", ws=workspace)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert ("metric 'rmsle' (--metric) cannot score train.csv's targets: row 6, column Price: '-300.0' is not a number "
            ">= 0 (the metric takes log(1 + value)); choose another with --metric, e.g. rmse") in result.output
    assert not (workspace / "competitions/prices-mini").exists()
    kaggle = describe.infer("prices-mini", folder, metric="RMSLE", metric_source="Kaggle API")
    assert (kaggle.metric, kaggle.metric_source) == ("rmse", "default")  # Kaggle's word is never an error


def test_log_loss_over_a_sample_of_one_label_per_row_is_refused(tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    train = pd.read_csv(folder / "train.csv")
    train["Price"] = pd.qcut(train["Price"], 3, labels=["low", "mid", "high"]).astype(str)
    train.to_csv(folder / "train.csv", index=False)
    pd.read_csv(folder / "sample_submission.csv").assign(Price="low").to_csv(folder / "sample_submission.csv",
                                                                            index=False)
    with pytest.raises(UsageError) as err:  # it trained, scored log loss out-of-fold, and submitted labels
        describe.infer("prices-mini", folder, metric="Multiclass Loss")
    assert str(err.value) == ("metric 'Multiclass Loss' scores one probability per class, but the sample submission "
                              "holds one label per row, which Kaggle's log loss cannot score; use accuracy or f1-macro")
    kaggle = describe.infer("prices-mini", folder, metric="Multiclass Loss", metric_source="Kaggle API")
    assert (kaggle.task, kaggle.metric, kaggle.metric_source) == ("multiclass", "accuracy", "default")


def test_whole_numbers_written_as_floats_are_classes_as_integers_are(kc, workspace, tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    train = pd.read_csv(folder / "train.csv")
    train["Price"] = (train["Price"] > train["Price"].median()).astype(float)  # written 0.0 and 1.0
    train.to_csv(folder / "train.csv", index=False)
    assert "1.0" in (folder / "train.csv").read_text()
    pd.read_csv(folder / "sample_submission.csv").assign(Price=0).to_csv(folder / "sample_submission.csv", index=False)
    assert kc("fetch", "prices-mini", "--from", folder, ws=workspace).exit_code == 0
    comp = competitions.get("prices-mini", workspace)
    assert (comp.task, comp.labels, comp.classes, comp.metric) == ("binary", "int", ("0", "1"), "accuracy")
    out = run_through(kc, workspace, "prices-mini", "--model", "knn")
    assert set(out["Price"]) <= {"0", "1"}
    train["Price"] = train["Price"] + 0.5  # no longer whole: values
    train.to_csv(folder / "train.csv", index=False)
    assert describe.infer("prices-mini", folder).task == "regression"


def test_whole_number_targets_are_values_when_the_metric_scores_values(tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    train = pd.read_csv(folder / "train.csv")
    train["Price"] = pd.qcut(train["Price"], 5, labels=False) + 3  # grades 3-7, as wine quality is
    train.to_csv(folder / "train.csv", index=False)
    assert describe.infer("prices-mini", folder).task == "multiclass"
    for metric in ("rmse", "Root Mean Squared Error", "mae"):
        comp = describe.infer("prices-mini", folder, metric=metric)
        assert (comp.task, comp.labels, comp.classes) == ("regression", "float", ()), metric
    assert describe.infer("prices-mini", folder, metric="accuracy").task == "multiclass"


def test_pixel_columns_make_a_pixel_competition(tmp_path):
    rng = np.random.default_rng(0)
    pixels = [f"pixel{i}" for i in range(16)]
    train = pd.DataFrame(rng.integers(0, 256, (30, 16)), columns=pixels)
    train.insert(0, "label", rng.integers(0, 3, 30))
    (tmp_path / "train.csv").write_text(train.to_csv(index=False))
    (tmp_path / "test.csv").write_text(train.drop(columns="label").head(5).to_csv(index=False))
    (tmp_path / "sample_submission.csv").write_text("ImageId,Label\n" + "".join(f"{i},0\n" for i in range(1, 6)))
    comp = describe.infer("tiny-pixels", tmp_path)
    assert (comp.modality, comp.image_shape, comp.task, comp.classes) == ("pixels", (4, 4), "multiclass",
                                                                          ("0", "1", "2"))
    assert (comp.target_column, comp.submission_columns, comp.test_has_ids) == ("label", ("ImageId", "Label"), False)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"sample_submission.csv": "Id,A,B\n1,0,0\n"},
         "sample_submission.csv has 2 value columns (A, B) that are neither class names found in a train.csv column "
         "nor train.csv columns"),
        ({"sample_submission.csv": None}, "no sample submission (a CSV named like sample_submission.csv)"),
        ({"sample_submission.csv": "Id,Missing\n1000,1\n", "test.csv": "Id,LotArea\n1000,8450\n"},
         "train.csv has no 'Missing' column, the target named by sample_submission.csv; of its columns not in "
         "test.csv ("),
        ({"train.csv": None}, "no train.csv among the files"),
        ({"train.csv": "Id,Area,Price\n1,2,\n2,3,\n"},
         "train.csv: column Price, taken for the target, is empty in every row; is train.csv the training file"),
        ({"sample_submission.csv": "Id;Price\n1000;1\n"},
         "sample_submission.csv: its columns are separated by ';', not commas; kc reads CSVs as Kaggle ships them"),
        ({"train.csv": "Id\tArea\tPrice\n1\t2\t3\n"}, "train.csv: its columns are separated by a tab, not commas"),
        ({"train.csv": "Id;Area, m2;Price\n1;2;3\n"}, "train.csv: its columns are separated by ';', not commas"),
        ({"train.csv": "Id;Area, m2;Price\n1;2,5;3\n"}, "train.csv: its columns are separated by ';', not commas"),
        ({"train.csv": "Id;Area, m2;Price, EUR\n1;2,5;3,0\n"},
         "train.csv: its columns are separated by ';', not commas"),
        ({"train.csv": "Id;Area, m2;Price\n1;2,5;\n"}, "train.csv: its columns are separated by ';', not commas"),
        ({"train.csv": "Id\tArea, m2\tPrice\n1\t2,5\t3\n"}, "train.csv: its columns are separated by a tab"),
        ({"train.csv": "Id|Area, m2|Price\n1|2,5|3\n"}, "train.csv: its columns are separated by '|', not commas"),
        ({"train.csv": "Id;Area,m2;Rooms;Price\n1;2,5;1;40\n"},  # commas read 'Id;Area' and 'm2;Rooms;Price'
         "train.csv: its columns are separated by ';', not commas"),
        ({"test.csv": "Id;Area,m2;Rooms\n1000;2,5;1\n"}, "test.csv: its columns are separated by ';', not commas"),
        ({"test.csv": "ID,Area,Rooms,Town\n1000,100.0,2,north\n"},
         "test.csv's id column is 'ID' and sample_submission.csv's 'Id': rename test.csv's to 'Id'"),
    ],
)
def test_ambiguous_competitions_are_one_line_errors(tmp_path, change, error):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    for name, text in change.items():
        if text is None:
            (folder / name).unlink()
        else:
            (folder / name).write_text(text)
    with pytest.raises(DataError) as err:
        describe.infer("prices-mini", folder)
    assert str(err.value).startswith(error)


def test_sample_ids_without_test_rows_are_told_at_fetch(kc, workspace, tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    sample = pd.read_csv(folder / "sample_submission.csv")
    sample.assign(Id=sample["Id"] + 5000).to_csv(folder / "sample_submission.csv", index=False)
    result = kc("fetch", "prices-mini", "--from", folder, ws=workspace)
    assert result.exit_code == 1 and result.stderr == (  # fetch and train passed; kc submit said it
        "Error: sample_submission.csv lists Id 6000 and 29 more that test.csv has no row for; is the sample "
        "submission from this competition's test set?\n")
    assert not (workspace / "competitions/prices-mini").exists()
    sample.to_csv(folder / "sample_submission.csv", index=False)
    test = pd.read_csv(folder / "test.csv")
    test.assign(Id=test["Id"].astype(float)).to_csv(folder / "test.csv", index=False)  # '1000.0'
    result = kc("fetch", "prices-mini", "--from", folder, ws=workspace)
    assert result.exit_code == 1 and result.stderr == (
        "Error: sample_submission.csv lists Id 1000 and 29 more that test.csv has no row for; test.csv writes its ids "
        "as numbers with decimals (1000.0): save them as whole numbers, as the sample does\n")


def test_sample_ids_written_with_decimals_are_told_so(kc, workspace, tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    sample = pd.read_csv(folder / "sample_submission.csv")
    sample.assign(Id=sample["Id"].astype(float)).to_csv(folder / "sample_submission.csv", index=False)
    result = kc("fetch", "prices-mini", "--from", folder, ws=workspace)
    assert result.exit_code == 1 and result.stderr == (  # it asked whether the sample was from this competition
        "Error: sample_submission.csv lists Id 1000.0 and 29 more that test.csv has no row for; sample_submission.csv "
        "writes its ids as numbers with decimals (1000.0): save them as whole numbers, as test.csv does\n")


def test_files_one_folder_down_are_pointed_to(tmp_path):
    folder = tmp_path / "download"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder / "prices-mini")
    with pytest.raises(DataError) as err:
        describe.infer("prices-mini", folder)
    assert str(err.value) == ("no train.csv among the files (none); kc needs train.csv and test.csv as Kaggle names "
                              "them; train.csv is in prices-mini/: fetch that folder")


def test_a_test_file_holding_the_target_is_told_so(kc, workspace, tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    test = pd.read_csv(folder / "test.csv")
    test.assign(Price=1.0).to_csv(folder / "test.csv", index=False)
    result = kc("fetch", "prices-mini", "--from", folder, ws=workspace)
    assert result.exit_code == 1 and result.stderr == (  # it said 'column Price is not in train'
        "Error: test.csv: it holds the target 'Price', which a test set leaves for the model to predict: remove that "
        "column from test.csv\n")


def test_a_comma_csv_whose_column_name_holds_the_target_between_pipes_is_read(tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    for name in ("train.csv", "test.csv"):  # test.csv's 'Town|Price' is no sign of a '|' file: commas find 'Id' too
        frame = pd.read_csv(folder / name)
        frame["Town"] = frame["Town"] + "|IDF"
        frame.rename(columns={"Town": "Town|Price"}).to_csv(folder / name, index=False)
    comp = describe.infer("prices-mini", folder)
    assert (comp.target_column, comp.task) == ("Price", "regression")


def test_a_sample_value_column_named_unlike_trains_target_is_trains_one_column_not_in_test(kc, workspace, tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    ids = pd.read_csv(folder / "sample_submission.csv")["Id"]
    pd.DataFrame({"Id": ids, "Predicted": 0.0}).to_csv(folder / "sample_submission.csv", index=False)
    assert kc("fetch", "prices-mini", "--from", folder, ws=workspace).exit_code == 0
    comp = competitions.get("prices-mini", workspace)
    assert (comp.target_column, comp.submission_columns, comp.task) == ("Price", ("Id", "Predicted"), "regression")
    out = run_through(kc, workspace, "prices-mini", "--model", "knn")
    assert out.columns.tolist() == ["Id", "Predicted"] and out["Predicted"].astype(float).min() > 10_000


def test_a_metric_given_again_to_a_fetched_competition_is_not_dropped_silently(kc, workspace, tmp_path):
    source = prices(tmp_path)
    assert kc("fetch", "prices-mini", "--from", source, ws=workspace).exit_code == 0
    again = kc("fetch", "prices-mini", "--from", source, "--metric", "Mean Absolute Error", ws=workspace)
    assert again.exit_code == 1 and again.stderr == (
        "Error: --metric Mean Absolute Error: prices-mini is already fetched and scored by rmse; set \"metric\": "
        f"\"mae\" in {workspace / 'competitions/prices-mini/competition.json'}, or add --force --from {source} to "
        "fetch it again\n")
    assert competitions.get("prices-mini", workspace).metric == "rmse"
    assert kc("fetch", "prices-mini", "--metric", "rmse", ws=workspace).exit_code == 0  # the same metric: no change
    forced = kc("fetch", "prices-mini", "--from", source, "--metric", "mae", "--force", ws=workspace)
    assert forced.exit_code == 0 and competitions.get("prices-mini", workspace).metric == "mae"


def test_an_edited_description_is_used_and_validated(kc, workspace, tmp_path):
    fetched = kc("fetch", "prices-mini", "--from", prices(tmp_path), ws=workspace)
    assert fetched.exit_code == 0 and "(e.g. \"metric\": \"mae\")" in fetched.stdout  # "f1" fits no regression
    path = workspace / "competitions/prices-mini/competition.json"
    data = json.loads(path.read_text())
    data["metric"] = "mae"
    path.write_text(json.dumps(data))
    assert competitions.get("prices-mini", workspace).metric == "mae"
    result = kc("train", "prices-mini", "--model", "knn", "--folds", "0", ws=workspace)
    assert result.exit_code == 0 and "validation MAE" in result.stdout
    for edit, message in [({"metric": "accuracy"}, "metric 'accuracy' does not score regression tasks; use one of: "
                                                   "rmse, rmse-log"),
                          ({"metric": "Root Mean Squared Error"},
                           "metric 'Root Mean Squared Error' is another name of kc's 'rmse': write that"),
                          ({"task": "ternary"}, "task is 'ternary', expected one of binary, multiclass, regression"),
                          ({"colour": "red"}, "unknown field colour")]:
        path.write_text(json.dumps(data | edit))
        result = kc("runs", "prices-mini", ws=workspace)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"Error: {path}: ") and message in result.stderr
        assert result.stderr.count("\n") == 1
    path.write_text("{not json")
    result = kc("runs", "prices-mini", ws=workspace)
    assert result.stderr == f"Error: {path}: not valid JSON (Expecting property name enclosed in double quotes at " \
                            "line 1)\n"


def test_an_unknown_slug_without_files_says_what_to_do(kc, workspace):
    result = kc("fetch", "spaceship-titanic", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no Kaggle credentials and kc bundles no copy of spaceship-titanic: "
                                    "download the data from https://www.kaggle.com/competitions/spaceship-titanic/data")
    result = kc("train", "spaceship-titanic", ws=workspace)
    assert result.exit_code == 1 and "unknown competition 'spaceship-titanic'" in result.stderr
    assert kc("fetch", "../etc", ws=workspace).stderr.startswith("Error: '../etc' is not a competition slug")


@pytest.mark.parametrize(("labels", "large", "model"), [(["a", "b", "c"], 40_000, "lgbm"), (["a", "b"], 30, "lgbm"),
                                                     (["a", "b"], 40_000, "blend"), (["a", "b"], 31, "blend")])
def test_tables_default_to_lgbm_for_several_classes_or_many_rows_and_blend_otherwise(tmp_path, monkeypatch, labels,
                                                                                      large, model):
    monkeypatch.setattr(describe, "LARGE_TABLE", large)  # 30 training rows below: a large table from 30 rows on
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"id": range(1, 31), "x": rng.normal(size=30), "kind": (labels * 30)[:30]})
    (tmp_path / "train.csv").write_text(train.to_csv(index=False))
    (tmp_path / "test.csv").write_text(train.drop(columns="kind").assign(id=range(31, 61)).to_csv(index=False))
    (tmp_path / "sample_submission.csv").write_text("id,kind\n" + "".join(f"{i},a\n" for i in range(31, 61)))
    assert describe.infer("some-table", tmp_path).default_model == model


def test_a_float_label_in_a_pixel_competition_is_named(tmp_path):
    pixels = ",".join(f"pixel{i}" for i in range(4))
    (tmp_path / "train.csv").write_text(f"label,{pixels}\n1,0,0,0,0\n2.5,1,1,1,1\n0,2,2,2,2\n")
    (tmp_path / "test.csv").write_text(f"{pixels}\n0,0,0,0\n")
    (tmp_path / "sample_submission.csv").write_text("ImageId,Label\n1,0\n")
    with pytest.raises(DataError) as err:
        describe.infer("tiny-pixels", tmp_path)
    assert str(err.value) == ("train.csv: row 2, column label: '2.5' is not a class; kc classifies pixel images by "
                              "integer labels (at most 20 of them)")


def test_an_infinite_target_names_its_row(tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    lines = (folder / "train.csv").read_text().splitlines()
    cells = lines[3].split(",")
    cells[-1] = "inf"
    lines[3] = ",".join(cells)
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        describe.infer("prices-mini", folder)
    assert str(err.value).startswith("train.csv: row 3, column ") and "'inf' is not a finite number" in str(err.value)


def test_a_binary_sample_of_probabilities_is_scored_by_auc_unless_told(tmp_path):
    import shutil

    from pipeline.ingest import describe

    src = Path(shutil.copytree(Path(__file__).parents[1] / "fixtures/titanic", tmp_path / "t"))
    sample = src / "gender_submission.csv"
    rows = sample.read_text().splitlines()
    sample.write_text("\n".join([rows[0], *(f"{r.split(',')[0]},0.5" for r in rows[1:])]) + "\n")
    comp = describe.infer("t", src)
    assert (comp.metric, comp.submission, comp.metric_source) == ("roc-auc", "proba", "default")
    told = describe.infer("t", src, "accuracy")
    assert (told.metric, told.submission) == ("accuracy", "labels")
    sample.write_text("\n".join([rows[0], *(f"{r.split(',')[0]},0" for r in rows[1:])]) + "\n")
    assert describe.infer("t", src).metric == "accuracy"  # 0s and 1s are labels


def test_a_built_in_competition_takes_kaggles_name_of_its_own_metric(kc, workspace):
    assert kc("fetch", "titanic", "--metric", "Categorization Accuracy", ws=workspace).exit_code == 0  # was refused
    refused = kc("fetch", "titanic", "--metric", "rmse", ws=workspace)
    assert refused.exit_code != 0 and "titanic is built in and scored by accuracy" in refused.stderr


@pytest.mark.parametrize("command", ["explore", "convert", "train"])
def test_a_train_file_of_ids_and_targets_alone_is_told_so(kc, workspace, tmp_path, command):
    rng = np.random.default_rng(3)
    ids = [f"S{s}_{item}_2015-11-{day:02d}" for s in (1, 2) for item in ("veggie", "chicken") for day in range(1, 31)]
    train = pd.DataFrame({"id": ids, "sales": rng.integers(0, 50, len(ids))})  # Web-Traffic-like: the id is it all
    zipped = _zip(tmp_path, "ids-only", train, pd.DataFrame({"id": [i.replace("-11-", "-12-") for i in ids]}),
                  "id", "sales", "0")
    assert kc("fetch", "ids-only", "--from", zipped, ws=workspace).exit_code == 0
    result = kc(command, "ids-only", ws=workspace)  # it said the table had 'no rows or no columns', or 'all were
    assert result.exit_code == 1 and result.stderr == (  # dropped by request'
        "Error: train.csv holds nothing to learn from, only the id 'id' and the target 'sales': kc learns from the "
        "columns train.csv and test.csv share, so add some to both (an id that packs several fields, such as "
        "store_item_date, can be split into columns)\n")


def test_a_table_of_free_text_alone_says_kc_reads_no_free_text(kc, workspace, tmp_path):
    rng = np.random.default_rng(4)
    words = np.array(["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "log", "fast", "slow", "red"])

    def rows(count: int, start: int) -> pd.DataFrame:
        return pd.DataFrame({"id": np.arange(start, start + count),
                             "text": [" ".join(rng.choice(words, 8)) + f" {i}" for i in range(count)]})

    train, test = rows(60, 1), rows(20, 100)
    train["author"] = rng.choice(["EAP", "HPL"], 60)
    assert kc("fetch", "text-only", "--from", _zip(tmp_path, "text-only", train, test, "id", "author", "EAP"),
              ws=workspace).exit_code == 0
    result = kc("train", "text-only", ws=workspace)
    assert result.exit_code == 1 and result.stderr.endswith(
        "kc learns from numbers, categories and dates, not free text; add columns computed from it (its length, a "
        "word's presence) to train.csv and test.csv\n")


@pytest.mark.parametrize("later", [True, False])
def test_train_warns_when_tests_dates_all_come_after_trains(kc, workspace, tmp_path, later):
    rng = np.random.default_rng(5)
    days = pd.date_range("2015-01-01", periods=120, freq="D").strftime("%Y-%m-%d").to_numpy()
    order = np.arange(120) if later else rng.permutation(120)  # test the last 30 days, or 30 days drawn anywhere
    frame = pd.DataFrame({"id": np.arange(120), "date": days[order], "store": rng.choice(["a", "b"], 120)})
    frame["sales"] = rng.integers(0, 40, 120)
    train, test = frame.iloc[:90], frame.iloc[90:].drop(columns="sales")
    assert kc("fetch", "dated", "--from", _zip(tmp_path, "dated", train, test, "id", "sales", "0"),
              ws=workspace).exit_code == 0
    for command in (("train", "dated", "--model", "sk-ridge"), ("compare", "dated", "--models", "sk-ridge")):
        result = kc(*command, ws=workspace)
        assert result.exit_code == 0, result.output
        warned = ("WARNING: test's date values all come after train's, and kc's folds are random: they mix past and "
                  "future rows, so this score may flatter a model that must forecast (kc explore shows the dates)")
        assert (warned in result.stderr) == later, result.stderr


def _prices_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    return folder


@pytest.mark.parametrize(("damage", "error"), [
    (lambda f: f["sample"].iloc[:0], "sample_submission.csv has a header but no rows; is it the competition's data?"),
    (lambda f: pd.concat([f["sample"], f["sample"].iloc[[3]]]),
     "sample_submission.csv lists Id 1003 twice (rows 4 and 31): a submission holds each id once; is the file "
     "damaged?"),
    (lambda f: f["test"].assign(Id=f["test"]["Id"].where(f["test"].index != 7, 1002)),
     "test.csv lists Id 1002 twice (rows 3 and 8): each test row needs an id of its own; is the file damaged?"),
])
def test_a_damaged_sample_or_test_id_column_is_refused_at_fetch(kc, workspace, tmp_path, damage, error):
    folder = _prices_folder(tmp_path)
    files = {"sample": pd.read_csv(folder / "sample_submission.csv"), "test": pd.read_csv(folder / "test.csv")}
    changed = damage(files)
    changed.to_csv(folder / ("test.csv" if "Rooms" in changed else "sample_submission.csv"), index=False)
    result = kc("fetch", "prices-mini", "--from", folder, ws=workspace)  # each passed fetch, to fail or write an
    assert result.exit_code == 1 and result.stderr.endswith(error + "\n")  # empty 'valid' file later


def test_a_sample_of_other_length_than_numbered_test_rows_is_refused_at_fetch(kc, workspace, tmp_path):
    folder = _prices_folder(tmp_path)
    for name in ("train.csv", "test.csv"):  # ids nowhere but in the sample: test's rows 1..n, as Digit Recognizer's
        pd.read_csv(folder / name).drop(columns="Id").to_csv(folder / name, index=False)
    sample = pd.read_csv(folder / "sample_submission.csv")
    sample.assign(Id=range(1, 31)).iloc[:25].to_csv(folder / "sample_submission.csv", index=False)
    result = kc("fetch", "prices-mini", "--from", folder, ws=workspace)  # it predicted the first 25 test rows
    assert result.exit_code == 1 and result.stderr == (
        "Error: sample_submission.csv lists 25 ids and test.csv holds 30 rows, which kc numbers 1 to 30: is the "
        "sample submission from this competition?\n")
    sample.assign(Id=range(1, 31)).to_csv(folder / "sample_submission.csv", index=False)
    assert kc("fetch", "prices-mini", "--from", folder, ws=workspace).exit_code == 0


def test_values_never_negative_in_train_are_never_predicted_negative(kc, workspace, tmp_path):
    rng = np.random.default_rng(6)

    def rows(count: int, start: int) -> pd.DataFrame:
        return pd.DataFrame({"id": np.arange(start, start + count), "x": rng.uniform(-3, 3, count).round(3)})

    train, test = rows(200, 1), rows(60, 1000)
    train["sales"] = np.maximum(0, 5 * train["x"]).round(2)  # counts: half of them 0; a line fit goes below
    assert kc("fetch", "counts", "--from", _zip(tmp_path, "counts", train, test, "id", "sales", "0"),
              ws=workspace).exit_code == 0
    path = workspace / "competitions/counts/competition.json"
    assert json.loads(path.read_text())["value_floor"] == 0.0
    written = []
    for floor in (0.0, None):  # as described, then with the floor taken out by hand
        path.write_text(json.dumps({**json.loads(path.read_text()), "value_floor": floor}))
        if floor is None:  # the run scored with the floor no longer says what its file would score
            assert kc("submit", "counts", ws=workspace).exit_code == 1
        assert kc("train", "counts", "--model", "sk-ridge", ws=workspace).exit_code == 0
        submitted = kc("submit", "counts", ws=workspace)
        assert submitted.exit_code == 0, submitted.output
        written.append(pd.read_csv(submitted.stdout.split("wrote ", 1)[1].split(" (", 1)[0])["sales"])
    assert written[0].min() == 0 and written[1].min() < 0  # the floor is what keeps them at 0 or above
    path.write_text(json.dumps({**json.loads(path.read_text()), "value_floor": "zero"}))
    refused = kc("train", "counts", ws=workspace)
    assert refused.exit_code == 1 and "value_floor must be a number between -1e30 and 1e30 for a regression task" in \
        refused.stderr


def test_a_train_file_of_a_header_alone_is_told_so(tmp_path):
    folder = tmp_path / "files"
    zipfile.ZipFile(prices(tmp_path)).extractall(folder)
    (folder / "train.csv").write_text((folder / "train.csv").read_text().splitlines()[0] + "\n")
    with pytest.raises(DataError) as err:  # it said the target had one value only
        describe.infer("prices-mini", folder)
    assert str(err.value) == "train.csv has a header but no rows; is it the competition's data?"

