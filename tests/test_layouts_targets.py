"""Several target columns, run end to end (fetch -> train -> submit -> validate) from small replicas of real tables.

tests/fixtures/layouts/build.py cuts them: `sizes` (COVID19-forecasting-like: penguins' bill and flipper lengths, two
value targets scored by mean column-wise RMSLE, ids in test and the sample only) and `skies` (Jigsaw-like: Seattle's
days with rain? and sun?, two 0/1 targets scored by mean column-wise AUC, in another order in train than the sample).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from pipeline.core import competitions
from pipeline.core.errors import DataError, UsageError
from pipeline.ingest import describe

LAYOUTS = Path(__file__).parent / "fixtures" / "layouts"


def fetch(kc, ws: Path, name: str, *extra: str, source: Path | None = None) -> tuple[competitions.Competition, str]:
    """`kc fetch NAME --from FOLDER`: the description it wrote, and what it printed."""
    result = kc("fetch", name, "--from", source or LAYOUTS / name, *extra, ws=ws)
    assert result.exit_code == 0, result.output
    return competitions.get(name, ws), result.stdout


def run_through(kc, ws: Path, name: str, *train: str) -> tuple[Path, pd.DataFrame]:
    """Train (one thread: the machine is shared), submit, validate the written file; the run and the file's cells."""
    trained = kc("train", name, "--threads", "1", *train, ws=ws)
    assert trained.exit_code == 0, trained.output
    run = ws / "competitions" / name / "runs" / trained.stdout.split("run ")[-1].split(" ->")[0]
    submitted = kc("submit", name, "--run", run.name, ws=ws)
    assert submitted.exit_code == 0, submitted.output
    written = Path(submitted.stdout.split("wrote ")[1].split(" (")[0])
    checked = kc("validate", name, str(written), ws=ws)
    assert checked.exit_code == 0, checked.output
    return run, pd.read_csv(written, dtype=str, keep_default_na=False)


def oof(run: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """A run's saved out-of-fold rows, (rows, targets) outputs, and metrics."""
    with np.load(run / "valid.npz") as saved:
        return saved["index"], saved["outputs"], json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_several_value_targets(kc, workspace):
    comp, printed = fetch(kc, workspace, "sizes", "--metric", "Mean Columnwise Root Mean Squared Logarithmic Error")
    assert comp.targets == ("bill_length_mm", "flipper_length_mm") and comp.task == "regression"
    assert (comp.metric, comp.default_model, comp.dropped_columns, comp.id_in_train) == \
        ("mean-rmsle", "lgbm", ("Id",), False)  # lgbm: a model's cost is paid per target (see describe.py)
    assert "2 targets bill_length_mm, flipper_length_mm, one model each: regression" in printed
    assert "metric: mean-rmsle, the mean column-wise RMSLE (--metric)" in printed
    train = pd.read_csv(LAYOUTS / "sizes/train.csv")
    sample = pd.read_csv(LAYOUTS / "sizes/sample_submission.csv", dtype=str)
    for model in ((), ("--model", "sk-ridge")):
        run, out = run_through(kc, workspace, "sizes", *model)
        assert list(out.columns) == list(sample.columns) and out["ForecastId"].tolist() == sample["ForecastId"].tolist()
        values = out[list(comp.targets)].astype(float)
        assert values["bill_length_mm"].between(25, 65).all() and values["flipper_length_mm"].between(160, 240).all()
        index, outputs, metrics = oof(run)
        truth = train[list(comp.targets)].to_numpy()[index]
        each = [sk.root_mean_squared_log_error(truth[:, j], np.expm1(outputs[:, j])) for j in range(2)]
        assert metrics["score"] == pytest.approx(np.mean(each), rel=1e-5)  # RMSLE per column, averaged
        assert list(metrics["target_scores"].values()) == pytest.approx(each, rel=1e-5)
        assert metrics["score"] < 0.06  # the mean bill is 44 mm: an RMSLE of 0.06 is ~6% off, a real fit
        rows = [np.load(run / f"target{j}" / "fold4" / "train_rows.npy") for j in range(2)]
        assert np.array_equal(*rows) and 200 < len(rows[0]) < 260  # every target's fold 5 saw the same rows


@pytest.mark.slow
def test_several_binary_targets(kc, workspace):
    comp, printed = fetch(kc, workspace, "skies", "--metric", "Mean Columnwise AUC")
    assert (comp.targets, comp.task, comp.metric, comp.writes_proba) == (("rain", "sun"), "binary", "mean-auc", True)
    assert "submission: the probability of 1 in each of rain, sun" in printed
    train = pd.read_csv(LAYOUTS / "skies/train.csv")
    runs = []
    for model in ((), ("--model", "blend")):
        run, out = run_through(kc, workspace, "skies", *model)
        assert list(out.columns) == ["id", "rain", "sun"]  # the sample's order, not train's (sun, rain)
        assert out["id"].iloc[0] == "00028"
        proba = out[["rain", "sun"]].astype(float).to_numpy()
        assert ((proba > 0) & (proba < 1)).all() and not np.allclose(proba.sum(axis=1), 1)  # each its own
        index, outputs, metrics = oof(run)
        truth = train[["rain", "sun"]].to_numpy()[index]
        each = [sk.roc_auc_score(truth[:, j], outputs[:, j]) for j in range(2)]
        assert metrics["score"] == pytest.approx(np.mean(each)) and metrics["score"] > 0.8
        runs.append(run.name)
    blended = kc("ensemble", "skies", *runs, ws=workspace)
    assert blended.exit_code == 0, blended.output
    assert "mean column-wise AUC" in blended.stdout


def test_nested_binary_targets_are_scored_out_of_fold(kc, workspace, tmp_path):
    folder = tmp_path / "nested"
    shutil.copytree(LAYOUTS / "skies", folder)
    train = pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False).drop(columns=["sun", "rain"])
    sample = pd.read_csv(folder / "sample_submission.csv", dtype=str)[["id"]]
    nested = {"y": [3, 4], "x1": [1, 3], "x2": [2, 4], "b": [1, 2]}  # two 1s each, every one shared with a target
    for name, rows in nested.items():
        train[name] = np.isin(np.arange(len(train)), rows).astype(int)
        sample[name] = 0.5
    train.to_csv(folder / "train.csv", index=False)
    sample.to_csv(folder / "sample_submission.csv", index=False)
    comp, _ = fetch(kc, workspace, "nested", "--metric", "auc", source=folder)
    assert comp.targets == tuple(nested) and comp.metric == "mean-auc"
    again = kc("fetch", "nested", "--from", folder, "--metric", "auc", ws=workspace)  # the same: its column-wise mean
    assert again.exit_code == 0 and "already fetched" in again.stdout
    one = kc("fetch", "nested", "--from", folder, "--metric", "accuracy", ws=workspace)  # it said: set "accuracy"
    assert one.exit_code == 1 and one.stderr == ("Error: --metric accuracy: it cannot score nested's several target "
                                                 "columns; use one of: roc-auc, log-loss, mean-auc, "
                                                 "mean-log-loss\n")
    for model in ("sk-logistic", "knn"):  # a fold without a target's 1 to learn crashed one and fooled the other
        run, out = run_through(kc, workspace, "nested", "--model", model)  # as many folds as a 1 has rows: 2
        index, outputs, metrics = oof(run)
        assert (metrics["scored_on"], len(metrics["fold_scores"]), outputs.shape) == ("oof", 2, (len(train), 4))
        assert sorted(index) == list(range(len(train)))
        assert list(out.columns) == ["id", *nested]
    refused = kc("train", "nested", "--folds", "3", ws=workspace)
    assert refused.exit_code != 0 and refused.stderr == (
        "Error: --folds 3: more folds than the 2 rows of y's rarer class; use --folds 2\n")
    split, _ = run_through(kc, workspace, "nested", "--model", "knn", "--folds", "0")  # saved with a NaN, unlisted
    _, _, metrics = oof(split)
    scored = {name: value for name, value in metrics["target_scores"].items() if value == value}
    assert 0 < len(scored) < 4 and metrics["score"] == pytest.approx(np.mean(list(scored.values())))
    assert "DAMAGED" not in kc("runs", "nested", ws=workspace).stdout


def test_held_out_rows_of_one_class_for_every_target_are_refused_before_training(kc, workspace, tmp_path):
    folder = tmp_path / "single"
    shutil.copytree(LAYOUTS / "skies", folder)
    train = pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False)
    train["rain"], train["sun"] = (np.arange(len(train)) == 1).astype(int), (np.arange(len(train)) == 2).astype(int)
    train.to_csv(folder / "train.csv", index=False)
    fetch(kc, workspace, "single", "--metric", "Mean Columnwise AUC", source=folder)
    refused = kc("train", "single", "--model", "knn", ws=workspace)  # the run was saved with a NaN score: DAMAGED
    assert refused.exit_code == 1 and refused.stderr == ("Error: the held-out rows hold one class of every target: "
                                                         "no mean column-wise AUC to score them by; add rows\n")
    assert not (workspace / "competitions/single/runs").exists() or not any(
        (workspace / "competitions/single/runs").iterdir())


# ---- bad input, one line each ----------------------------------------------------------------------------------


def _edited(tmp_path: Path, name: str, change) -> Path:
    """A copy of a fixture with train.csv changed."""
    folder = tmp_path / name
    shutil.copytree(LAYOUTS / name, folder)
    train = pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False)
    change(train)
    train.to_csv(folder / "train.csv", index=False)
    return folder


@pytest.mark.parametrize(("change", "error"), [
    (lambda t: t.loc.__setitem__((4, "flipper_length_mm"), ""),
     "train.csv: row 5, column flipper_length_mm: the target is missing; kc learns from labelled rows only: delete "
     "the 1 unlabelled row from train.csv"),
    (lambda t: t.loc.__setitem__(([4, 9, 11], "flipper_length_mm"), ""),
     "train.csv: row 5, column flipper_length_mm: the target is missing (and in 2 more rows); kc learns from "
     "labelled rows only: delete the 3 unlabelled rows from train.csv and fetch that folder with --from"),
    (lambda t: t.loc.__setitem__((7, "bill_length_mm"), "n/a"),
     "train.csv: row 8, column bill_length_mm: 'n/a' is not a finite number, though the target's other values are"),
    (lambda t: t.drop(columns=["flipper_length_mm"], inplace=True),
     "sample_submission.csv has the target columns bill_length_mm, flipper_length_mm, but train.csv has no "
     "'flipper_length_mm' column: is the sample submission from this competition?"),
    (lambda t: t.__setitem__("flipper_length_mm", t["species"]),
     "sample_submission.csv: target columns kc cannot learn together (bill_length_mm: values; flipper_length_mm: "
     "3 text classes): kc learns several targets when all are numbers or all have the same two classes; "
     "competition.json takes \"targets\" of one such kind, e.g. numbers with \"task\": \"regression\""),
])
def test_bad_targets_are_one_line(tmp_path, change, error):
    with pytest.raises(DataError) as err:
        describe.infer("sizes", _edited(tmp_path, "sizes", change))
    assert str(err.value).startswith(error) and "\n" not in str(err.value)


def test_numbers_beside_values_are_regressed_and_the_metric_defaults_to_the_columnwise_mean(tmp_path):
    counts = describe.infer("sizes", _edited(tmp_path, "sizes", lambda t: t.__setitem__("flipper_length_mm", [
        str(i % 4) for i in range(len(t))])))  # a count with few values: a class alone, a value beside another
    assert (counts.task, counts.metric, counts.metric_source) == ("regression", "mean-rmse", "default")
    skies = describe.infer("skies", LAYOUTS / "skies")
    assert (skies.metric, skies.submission, skies.classes) == ("mean-log-loss", "proba", ("0", "1"))
    assert describe.infer("skies", LAYOUTS / "skies", "AUC").metric == "mean-auc"  # one column's metric, averaged


@pytest.mark.parametrize(("name", "metric", "error"), [
    ("skies", "accuracy", "metric 'accuracy' cannot score several target columns; use one of: roc-auc, log-loss, "
                          "mean-auc, mean-log-loss"),
    ("weather", "mean-rmse", "metric 'mean-rmse' scores several target columns, and the sample submission has one; "
                             "use rmse"),
])
def test_a_metric_that_does_not_fit_the_number_of_targets_is_a_usage_error(name, metric, error):
    with pytest.raises(UsageError) as err:
        describe.infer(name, LAYOUTS / name, metric)
    assert str(err.value) == error


@pytest.mark.parametrize(("name", "change", "error"), [
    ("skies", lambda s: s.__setitem__("sun", 1.5), "row 1: sun '1.5' is not a probability (a number from 0 to 1)"),
    ("skies", lambda s: s.__setitem__("rain", "yes"), "row 1: rain 'yes' is not a probability"),
    ("skies", lambda s: s.insert(1, "sun", s.pop("sun")), "columns must be id,rain,sun in that order; got id,sun,rain"),
    ("sizes", lambda s: s.__setitem__("flipper_length_mm", "inf"),
     "row 1: flipper_length_mm 'inf' is not a number >= 0 (the metric takes log(1 + value))"),
    ("sizes", lambda s: s.drop(columns=["bill_length_mm"], inplace=True),
     "columns must be ForecastId,bill_length_mm,flipper_length_mm in that order"),
])
def test_each_target_column_of_a_submission_is_checked(kc, workspace, tmp_path, name, change, error):
    fetch(kc, workspace, name, "--metric", "mean-rmsle" if name == "sizes" else "mean-auc")
    sample = pd.read_csv(LAYOUTS / name / "sample_submission.csv", dtype=str)
    change(sample)
    sample.to_csv(tmp_path / "mine.csv", index=False)
    result = kc("validate", name, str(tmp_path / "mine.csv"), ws=workspace)
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: mine.csv: {error}"), result.output


@pytest.mark.parametrize(("kaggle_says", "metric", "source"), [
    ("Mean Columnwise AUC", "mean-auc", "Kaggle API"),
    ("AUC", "mean-auc", "Kaggle API"),  # one column's metric, averaged over the columns
    ("Categorization Accuracy", "mean-log-loss", "default"),  # no column-wise accuracy: the default, said as such
])
def test_the_kaggle_api_metric_of_several_targets(kc, workspace, tmp_path, kaggle_server, kaggle_says, metric, source):
    from tests.test_layouts import _zip_of

    kaggle_server.zips["skies"] = _zip_of(LAYOUTS / "skies", tmp_path)
    kaggle_server.metrics["skies"] = kaggle_says
    result = kc("fetch", "skies", ws=workspace)
    assert result.exit_code == 0, result.output
    assert (competitions.get("skies", workspace).metric, competitions.get("skies", workspace).metric_source) == \
        (metric, source)


def test_several_targets_refit_for_the_epochs_validation_chose(kc, workspace):
    fetch(kc, workspace, "skies", "--metric", "Mean Columnwise AUC")
    trained = kc("train", "skies", "--model", "linear", "--full", "--threads", "1", ws=workspace)
    assert trained.exit_code == 0, trained.output  # the epoch table met refit epochs without validation figures
    assert "refit on all rows for" in trained.stdout


@pytest.mark.parametrize("name", ["sizes", "skies"])
def test_lr_find_says_it_takes_one_target(kc, workspace, name):
    comp, _ = fetch(kc, workspace, name)
    result = kc("lr-find", name, "--model", "tabular", ws=workspace)  # an IndexError, or 'object too deep'
    assert result.exit_code == 1 and result.stderr == (
        f"Error: kc lr-find handles one target; {name} has {len(comp.targets)}: kc train fits each target with the "
        "model's default rate, or the one --lr gives\n")


def test_a_metric_that_cannot_score_several_0_1_targets_lists_those_that_can(kc, workspace):
    result = kc("fetch", "skies", "--from", LAYOUTS / "skies", "--metric", "rmse", ws=workspace)
    assert result.exit_code == 1 and result.stderr == (  # it listed accuracy, f1, qwk: each refused for several
        "Error: metric 'rmse' does not score binary tasks; use one of: roc-auc, log-loss, mean-auc, mean-log-loss\n")


def test_the_fetch_hint_for_several_0_1_targets_suggests_another_metric(kc, workspace):
    comp, printed = fetch(kc, workspace, "skies")  # it suggested "mean-log-loss", the metric already set
    assert comp.metric == "mean-log-loss" and '(e.g. "metric": "mean-auc")' in printed
