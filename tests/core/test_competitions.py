import dataclasses
import json

import pytest

from pipeline.core import competitions
from pipeline.core.competitions import Competition
from pipeline.core.errors import DataError, UsageError


def test_registry_knows_the_built_in_competitions():
    assert set(competitions.REGISTRY) == {"titanic", "digit-recognizer", "house-prices-advanced-regression-techniques"}
    digits = competitions.get("digit-recognizer")
    assert digits.target_column == "label" and digits.image_shape == (28, 28)
    assert digits.pixel_columns[0] == "pixel0" and len(digits.pixel_columns) == 784
    assert digits.classes == tuple("0123456789") and digits.task == "multiclass"
    assert digits.submission_columns == ("ImageId", "Label")
    titanic = competitions.get("titanic")
    assert titanic.submission_columns == ("PassengerId", "Survived") and titanic.classes == ("0", "1")
    assert titanic.files == ("train.csv", "test.csv", "gender_submission.csv")
    houses = competitions.get("house-prices")
    assert houses is competitions.get("house-prices-advanced-regression-techniques")
    assert houses.task == "regression" and houses.metric == "rmse-log" and houses.classes == ()
    assert houses.files == ("train.csv", "test.csv", "sample_submission.csv", "data_description.txt")


def test_unknown_slug_lists_the_known_ones():
    with pytest.raises(UsageError) as err:
        competitions.get("mnist")
    assert str(err.value) == ("unknown competition 'mnist'; kc knows: digit-recognizer, house-prices, "
                              "house-prices-advanced-regression-techniques, titanic. For another competition, "
                              "`kc fetch mnist --from FILE.zip` describes it from its files")


def test_a_slug_kaggle_could_not_have_made_is_refused():
    with pytest.raises(UsageError) as err:
        competitions.get("../titanic")
    assert str(err.value) == ("'../titanic' is not a competition slug: use lowercase letters, digits and hyphens, "
                              "as in the competition's Kaggle address")


def test_entries_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        competitions.get("titanic").slug = "other"  # type: ignore[misc]


@pytest.mark.parametrize("comp", list(competitions.REGISTRY.values()), ids=list(competitions.REGISTRY))
def test_description_round_trips_through_json(comp):
    data = json.loads(json.dumps(comp.to_json()))
    assert Competition.from_json(data, "competition.json") == comp


def test_saved_description_is_found_in_the_workspace(tmp_path):
    mine = dataclasses.replace(competitions.TITANIC, slug="my-titanic", title="Mine", aliases=())
    path = competitions.save(mine, tmp_path)
    assert path == tmp_path / "competitions/my-titanic/competition.json"
    assert competitions.load(path) == mine
    assert competitions.get("my-titanic", tmp_path) == mine
    with pytest.raises(UsageError, match="^unknown competition 'my-titanic'"):
        competitions.get("my-titanic")  # without the workspace, kc does not know it


VALUES = {"task": "regression", "labels": "float", "classes": [], "class_names": [], "metric": "rmse"}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"task": "ranking"}, "task is 'ranking', expected one of binary, multiclass, regression"),
        ({"metric": "auc"}, "metric 'auc' is another name of kc's 'roc-auc': write that"),
        ({"metric": "area"}, "metric 'area' is unknown; kc knows: accuracy, f1, f1-macro, f1-micro, mcc, qwk, roc-auc, "
                             "log-loss, map@3, rmse, rmse-log, rmsle, mae, mape, smape, r2"),
        ({"metric": "rmse"}, "metric 'rmse' does not score binary tasks"),
        ({"classes": ["0", "1", "2"]}, "a binary task needs exactly 2 classes"),
        ({"colour": "red"}, "unknown field colour; fields are: "),
        ({"image_shape": [28]}, "image_shape must be [rows, columns] or null"),
        ({"default_options": ["lr"]}, "default_options must be key=value strings, not 'lr'"),
        ({"default_options": "lr=0.1"}, "default_options must be a list of strings"),
        ({"modality": "pixels", "features": "pixels", "image_shape": [50000, 50000]},
         "image_shape must be positive, at most 4096 a side and 262,144 pixels in all"),
        ({"task": "multiclass", "classes": [str(i) for i in range(5000)]},
         "classes must be a list of at most 1000 entries"),
        ({"metric": ["accuracy"]}, "metric must be a non-empty string of at most 200 characters"),
        ({"train_file": "../../secret.csv"}, "file '../../secret.csv' must be a plain name in the competition's "
                                             "folder (no folder, no leading dot, none of .kc-fetch.json, "
                                             "competition.json, derived, runs)"),
        ({"sample_file": "/etc/passwd"}, "file '/etc/passwd' must be a plain name"),
        ({"extra_files": ["runs"]}, "file 'runs' must be a plain name"),
        ({"title": "x" * 5000}, "title must be a non-empty string of at most 200 characters"),
        ({**VALUES, "value_floor": 1e299}, "value_floor must be a number between -1e30 and 1e30"),  # overflowed
        ({**VALUES, "value_floor": 10 ** 400}, "value_floor must be a number between -1e30 and 1e30"),
        ({**VALUES, "value_floor": True}, "value_floor must be a number between -1e30 and 1e30"),
        ({"forecast_columns": ["nope"]}, "forecast_columns names 'nope', which is not one of date_columns"),
    ],
)
def test_a_damaged_description_names_the_file_and_the_problem(tmp_path, change, problem):
    data = {**competitions.TITANIC.to_json(), **change}
    path = tmp_path / "competitions/titanic/competition.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as err:
        competitions.load(path)
    assert str(err.value).startswith(f"{path}: {problem}")


def test_description_in_the_wrong_folder_is_refused(tmp_path):
    path = tmp_path / "competitions/other/competition.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(competitions.TITANIC.to_json()))
    with pytest.raises(DataError) as err:
        competitions.load(path)
    assert str(err.value) == f"{path}: slug is 'titanic' but the folder is 'other'"


def test_missing_and_broken_json(tmp_path):
    path = tmp_path / "competitions/titanic/competition.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"slug": "titanic"}))
    with pytest.raises(DataError) as err:
        competitions.load(path)
    assert str(err.value) == f"{path}: missing field title, id_column, target_column, task, metric"
    path.write_text("{")
    with pytest.raises(DataError, match=r"not valid JSON \(Expecting property name"):
        competitions.load(path)


def test_default_options_are_read_as_key_value_pairs_for_the_default_model_only():
    import dataclasses

    comp = dataclasses.replace(competitions.TITANIC, default_options=(" lr = 0.08 ", "epochs=40"))
    assert comp.options_for("linear") == {"lr": "0.08", "epochs": "40"}
    assert comp.options_for("knn") == {}


def test_a_description_nested_too_deeply_is_one_error(tmp_path):
    path = tmp_path / "competitions/titanic/competition.json"
    path.parent.mkdir(parents=True)
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DataError) as err:
        competitions.load(path)
    assert str(err.value) == f"{path}: nested too deeply to be a description"


TITANIC_JSON = json.loads(json.dumps(competitions.TITANIC.to_json()))  # lists, as a file holds them
SKIES = {**TITANIC_JSON, "slug": "skies", "title": "Skies", "id_column": "id", "target_column": "rain",
         "targets": ["rain", "sun"], "metric": "mean-auc", "submission": "proba", "class_names": [],
         "features": "generic", "default_options": [], "sample_file": "sample_submission.csv"}


def test_several_targets_round_trip_and_view_one_target_at_a_time(tmp_path):
    comp = competitions.Competition.from_json(SKIES, "skies")
    assert competitions.load(competitions.save(comp, tmp_path)) == comp
    assert comp.submission_columns == ("id", "rain", "sun") and comp.target_columns == ("rain", "sun")
    sun = comp.for_target("sun")
    assert (sun.target_column, sun.targets, sun.metric, sun.submission_columns) == ("sun", (), "roc-auc", ("id", "sun"))
    old = {k: v for k, v in TITANIC_JSON.items() if k != "targets"}  # written before kc knew several targets
    assert competitions.Competition.from_json(old, "old").target_columns == ("Survived",)


@pytest.mark.parametrize(("change", "problem"), [
    ({"targets": ["rain"]}, "targets must list 2 or more distinct columns, the first of them the target_column"),
    ({"targets": ["sun", "rain"]}, "targets must list 2 or more distinct columns, the first of them"),
    ({"targets": ["rain", "rain"]}, "targets must list 2 or more distinct columns"),
    ({"targets": []}, "metric 'mean-auc' scores several target columns; list them in targets"),
    ({"metric": "roc-auc"}, "metric 'roc-auc' scores one target; several targets take a column-wise metric such as "
                            "mean-auc"),
    ({"metric": "mean-rmse"}, "metric 'mean-rmse' does not score binary tasks"),
    ({"submission": "labels", "metric": "mean-log-loss"}, "several binary targets are written as probabilities"),
    ({"targets": "rain,sun"}, "targets must be a list of strings"),
    ({"dropped_columns": ["sun"]}, "dropped_columns cannot hold the id or the target"),
])
def test_a_damaged_several_targets_description_is_one_line(change, problem):
    with pytest.raises(DataError) as err:
        competitions.Competition.from_json({**SKIES, **change}, "skies.json")
    assert str(err.value).startswith(f"skies.json: {problem}")


def test_a_floor_of_0_is_the_floor_0_0():
    import dataclasses

    base = dataclasses.replace(competitions.TITANIC, task="regression", labels="float", classes=(), metric="rmse")
    zero, point = (dataclasses.replace(base, value_floor=v).learning_key for v in (0, 0.0))
    assert zero == point != base.learning_key  # '0' in competition.json made every run stale
