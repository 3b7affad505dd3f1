import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from conftest import FIXTURES, install, non_dot

from pipeline.cli.app import handled
from pipeline.core.errors import DataError, KaggleError, KcError, SubmissionError, UsageError


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_help_and_version_import_no_heavy_packages(option):
    code = "import sys; from pipeline.cli.app import app; " \
           f"from typer.testing import CliRunner; r = CliRunner().invoke(app, ['{option}']); " \
           "assert r.exit_code == 0; " \
           "print(sorted(m for m in ('numpy', 'pandas', 'torch', 'fastai', 'kaggle', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_competition(workspace, kc):
    result = kc("train", "mnist", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == ("Error: unknown competition 'mnist'; kc knows: digit-recognizer, house-prices, "
                             "house-prices-advanced-regression-techniques, titanic. For another competition, "
                             "`kc fetch mnist --from FILE.zip` describes it from its files\n")
    # fetch takes any slug Kaggle could have made: it describes the competition from the files it gets
    result = kc("fetch", "mnist", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == ("Error: no Kaggle credentials and kc bundles no copy of mnist: download the data from "
                             "https://www.kaggle.com/competitions/mnist/data and run `kc fetch mnist --from FILE.zip`, "
                             "or save an API token from https://www.kaggle.com/settings as ~/.kaggle/kaggle.json\n")
    result = kc("fetch", "MNIST!", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == ("Error: 'MNIST!' is not a competition slug: use lowercase letters, digits and hyphens, "
                             "as in the competition's Kaggle address\n")


def test_fetch_needs_a_slug(workspace, kc):
    result = kc("fetch", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == "Error: which competition? e.g. `kc fetch titanic`\n"


def test_fetch_missing_file(workspace, tmp_path, kc):
    result = kc("fetch", "titanic", "--from", tmp_path / "nope.zip", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path / 'nope.zip'}: no such file or folder\n"


def test_fetch_truncated_zip_is_one_line_and_leaves_nothing(workspace, fixture_zips, tmp_path, kc):
    broken = tmp_path / "cut.zip"
    broken.write_bytes(fixture_zips["titanic"].read_bytes()[:-100])
    result = kc("fetch", "titanic", "--from", broken, ws=workspace)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {broken}: corrupt or truncated zip")
    assert result.stderr.count("\n") == 1
    assert non_dot(workspace / "competitions") == []


def test_fetch_bundled_says_so_loudly(workspace, kc):
    result = kc("fetch", "digit-recognizer", ws=workspace)
    assert result.exit_code == 0, result.output
    assert ("NOTE: no Kaggle credentials, so kc used a SAMPLE (5,000 train rows, 1,000 test rows: submissions from it "
            "are practice only and cannot be uploaded) of digit-recognizer data bundled with kc") in result.stderr
    again = kc("fetch", "digit-recognizer", ws=workspace)
    assert "already fetched" in again.stdout and "NOTE" not in again.stderr


@pytest.mark.slow
def test_fetch_through_the_fake_server(workspace, kaggle_server, kc):
    result = kc("fetch", "titanic", ws=workspace)
    assert result.exit_code == 0, result.output
    assert "(from Kaggle API)" in result.stdout


def test_fetch_rules_not_accepted(workspace, kaggle_server, kc):
    kaggle_server.fail["DownloadDataFiles"] = 403
    result = kc("fetch", "titanic", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == ("Error: Kaggle refused to download titanic (403): accept the rules at "
                             "https://www.kaggle.com/competitions/titanic/rules, then run the command again\n")


@pytest.mark.slow
def test_fetch_describes_a_competition_kc_does_not_know(workspace, kc):
    result = kc("fetch", "my-titanic", "--from", FIXTURES / "titanic", "--metric", "f1", ws=workspace)
    assert result.exit_code == 0, result.output
    folder = workspace / "competitions/my-titanic"
    assert result.stdout.splitlines() == [
        f"my-titanic: train.csv, test.csv, gender_submission.csv -> {folder} (from {FIXTURES / 'titanic'})",
        f"kc described my-titanic from its files -> {folder / 'competition.json'}",
        "  id PassengerId (int); target Survived: binary, 2 classes (0, 1) written as int",
        "  submission: one label per row in Survived",
        "  inputs: a table; metric: f1 (--metric); default model: blend",
        '  edit competition.json to correct any of it (e.g. "metric": "accuracy")',  # a metric of its task, not f1
    ]
    trained = kc("train", "my-titanic", "--model", "sk-logistic", "--folds", "0", ws=workspace)
    assert trained.exit_code == 0, trained.output
    assert trained.stdout.startswith("my-titanic sk-logistic: validation F1 score ")


def test_fetch_metric_must_fit_the_task(workspace, kc):
    result = kc("fetch", "my-titanic", "--from", FIXTURES / "titanic", "--metric", "rmse", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == "Error: metric 'rmse' does not score binary tasks; use one of: accuracy, f1, f1-macro, " \
                            "f1-micro, mcc, qwk, roc-auc, log-loss\n"
    assert non_dot(workspace / "competitions") == []


def test_convert_before_fetch(workspace, kc):
    result = kc("convert", "digit-recognizer", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: digit-recognizer is not fetched yet in {workspace}: "
                             "run `kc fetch digit-recognizer` first\n")


@pytest.mark.slow
def test_convert_and_show(fetched, kc):
    result = kc("convert", "digit-recognizer", "--images", ws=fetched)
    assert result.exit_code == 0, result.output
    assert "train (300, 28, 28) uint8" in result.stdout and "PNGs: 400 written" in result.stdout
    shown = kc("show", "digit-recognizer", "--label", "3", "-n", "9", ws=fetched)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == f"{fetched / 'competitions/digit-recognizer/derived/images-3-9.png'}\n"


def test_convert_titanic_writes_its_feature_tables(fetched, kc):
    result = kc("convert", "titanic", ws=fetched)
    assert result.exit_code == 0, result.output
    derived = fetched / "competitions/titanic/derived"
    assert re.fullmatch(rf"titanic: converted in \d+\.\d\ds: 300 train and 100 test rows, \d+ features "
                        rf"\(titanic builder\) -> {re.escape(str(derived))}", result.stdout.splitlines()[0])
    assert result.stdout.splitlines()[1].startswith("features: Female, Pclass1, ")
    assert sorted(p.name for p in derived.iterdir()) == ["features.json", "features_test.parquet",
                                                         "features_train.parquet"]


def test_show_rejects_a_bad_label(fetched, kc):
    result = kc("show", "digit-recognizer", "--label", "11", ws=fetched)
    assert result.exit_code == 1
    assert result.stderr == "Error: --label 11: expected one of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9\n"


def test_convert_titanic_images_is_refused(fetched, kc):
    result = kc("convert", "titanic", "--images", ws=fetched)
    assert result.exit_code == 1
    assert result.stderr == "Error: --images applies to pixel competitions; titanic is tabular\n"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--model", "forest"], "Error: unknown model 'forest'; kc knows: linear, knn, cnn, tabular, sk-logistic, "
                                "sk-ridge, sk-forest, sk-gbm, lgbm, catboost, blend\n"),
        (["--model", "cnn"], "Error: model 'cnn' does not handle tabular inputs (titanic); use one of: linear, knn, "
                             "tabular, sk-logistic, sk-forest, sk-gbm, lgbm, catboost, blend\n"),
        (["--model", "sk-ridge"], "Error: model 'sk-ridge' does not handle binary tasks (titanic); use one of: "
                                  "linear, knn, tabular, sk-logistic, sk-forest, sk-gbm, lgbm, catboost, blend\n"),
        (["--model", "knn", "--epochs", "3"], "Error: model 'knn' has no option epochs; it takes: k, weighting, "
                                              "deskew, blur, pca, batch\n"),
        (["--model", "linear", "-p", "lr=fast"], "Error: option lr='fast': expected float\n"),
        (["--model", "knn", "-p", "weighting=closest"], "Error: option weighting='closest': expected distance or "
                                                        "uniform\n"),
        (["--model", "linear", "-p", "nonsense"], "Error: -p 'nonsense': expected key=value, e.g. -p k=3\n"),
        (["--model", "linear", "--valid-pct", "1.5"],
         "Error: --valid-pct 1.5: expected a fraction between 0.01 and 0.5, e.g. 0.1\n"),
        (["--model", "linear", "--valid-pct", "0.005"],
         "Error: --valid-pct 0.005: expected a fraction between 0.01 and 0.5, e.g. 0.1\n"),
        (["--model", "linear", "--device", "cuda"], "Error: --device cuda: model 'linear' runs on the CPU only\n"),
        (["--features", "pixels"],
         "Error: --features pixels: expected one of generic, titanic, titanic-plain, houses\n"),
        (["--model", "linear", "--time-limit", "30"], "Error: --time-limit: model 'linear' cannot keep to a time "
                                                      "budget; use lgbm, catboost, blend, cnn or tabular, or "
                                                      "train without "
                                                      "--time-limit\n"),
    ],
)
def test_train_option_errors(fetched, kc, args, error):
    result = kc("train", "titanic", *args, ws=fetched)
    assert result.exit_code == 1
    assert result.stderr == error
    assert not (fetched / "competitions/titanic/runs").exists()


def test_train_threads_and_time_limit_reach_the_run(fetched, kc):
    result = kc("train", "titanic", "--model", "lgbm", "-p", "n_estimators=5", "--threads", "1", "--time-limit", "60",
                ws=fetched)
    assert result.exit_code == 0, result.output
    config = json.loads(next((fetched / "competitions/titanic/runs").glob("*/config.json")).read_text())
    assert (config["threads"], config["time_limit"], config["params"]["threads"]) == (1, 60, 1)
    assert 0 < config["params"]["time_limit"] < 60  # the fit's share, less what loading and recording need


def test_more_threads_than_cores_are_capped_and_the_cap_is_said(fetched, kc):
    from pipeline.core.threads import available

    n = available()
    result = kc("train", "titanic", "--model", "lgbm", "-p", "n_estimators=5", "--threads", str(n + 62), ws=fetched)
    assert result.exit_code == 0, result.output
    assert f"NOTE: --threads {n + 62}: kc may run on {n} core{'s' * (n > 1)} here, so it uses {n}\n" in result.stderr
    config = json.loads(next((fetched / "competitions/titanic/runs").glob("*/config.json")).read_text())
    assert config["threads"] == n
    quiet = kc("train", "titanic", "--model", "lgbm", "-p", "n_estimators=5", "--threads", str(n), ws=fetched)
    assert quiet.exit_code == 0 and "NOTE" not in quiet.stderr


def test_fewer_default_folds_say_why(workspace, kc, tmp_path):
    rng = np.random.default_rng(0)
    grade = np.r_[np.full(30, 1), np.full(27, 2), np.full(3, 3)]  # the rarest class: 3 rows, so 3 folds
    source = tmp_path / "grades"
    source.mkdir()
    pd.DataFrame({"Id": range(60), "x": grade + rng.normal(0, 0.3, 60), "grade": grade}).to_csv(
        source / "train.csv", index=False)
    pd.DataFrame({"Id": range(60, 70), "x": rng.normal(2, 1, 10)}).to_csv(source / "test.csv", index=False)
    pd.DataFrame({"Id": range(60, 70), "grade": 1}).to_csv(source / "sample_submission.csv", index=False)
    assert kc("fetch", "grades", "--from", source, ws=workspace).exit_code == 0
    result = kc("train", "grades", "--model", "sk-logistic", ws=workspace)
    assert result.exit_code == 0, result.output
    assert "3 folds, not 5: the rarest class has only 3 rows\n" in result.stdout
    assert "folds, not" not in kc("train", "grades", "--model", "sk-logistic", "--folds", "2", ws=workspace).stdout
    too_many = kc("train", "grades", "--model", "sk-logistic", "--folds", "5", ws=workspace)
    assert too_many.stderr == "Error: --folds 5: more folds than the 3 rows of the smallest class; use --folds 3\n"
    compared = kc("compare", "grades", "--models", "sk-logistic", ws=workspace)  # as many folds as train takes
    assert compared.exit_code == 0, compared.output
    assert "the same 3 folds" in compared.stdout and "3 folds, not 5: the rarest class has only 3 rows\n" in \
        compared.stdout
    told = kc("compare", "grades", "--models", "sk-logistic", "--folds", "5", ws=workspace)
    assert told.stderr == ("Error: no model could be scored: --folds 5: more folds than the 3 rows of the smallest "
                           "class; use --folds 3\n")
    split = kc("train", "grades", "--model", "sk-logistic", "--folds", "0", ws=workspace)
    assert split.stderr.endswith("score every row out-of-fold with --folds 3\n")  # the --folds that works, not 5


def test_a_table_of_one_row_a_class_blames_the_rows_not_an_option(workspace, kc, tmp_path):
    source = tmp_path / "pair"
    source.mkdir()
    pd.DataFrame({"Id": [1, 2], "x": [0.5, 1.5], "kind": ["cat", "dog"]}).to_csv(source / "train.csv", index=False)
    pd.DataFrame({"Id": [3, 4], "x": [1.0, 2.0]}).to_csv(source / "test.csv", index=False)
    pd.DataFrame({"Id": [3, 4], "kind": "cat"}).to_csv(source / "sample_submission.csv", index=False)
    assert kc("fetch", "pair", "--from", source, ws=workspace).exit_code == 0
    result = kc("train", "pair", "--model", "linear", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == ("Error: train has 2 rows: too few to hold any out and score a model on (a class needs two "
                             "rows, one learnt and one scored); add rows\n")
    compared = kc("compare", "pair", "--models", "linear", ws=workspace)
    assert compared.stderr == ("Error: no model can be scored out-of-fold: a class with a single row is never both "
                               "learnt and scored; add rows\n")


def test_train_before_fetch(workspace, kc):
    result = kc("train", "titanic", "--model", "linear", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == f"Error: titanic is not fetched yet in {workspace}: run `kc fetch titanic` first\n"


@pytest.mark.slow
def test_one_competition_needs_no_slug(titanic_only, tmp_path, kc):
    trained = kc("train", "--epochs", "2", "--folds", "0", ws=titanic_only)  # the competition's default model: linear
    assert trained.exit_code == 0, trained.output
    table, _ = trained.stdout.split("titanic linear: validation accuracy ")  # fastai's epoch table first
    header = next(line for line in table.splitlines() if "epoch" in line and "train_loss" in line)
    assert [c.strip() for c in header.strip("┃│ ").split("┃")] == ["epoch", "train_loss", "valid_loss",
                                                                    "valid_accuracy", "time"]
    assert len(re.findall(r"^│ [12]( \*)? ", table, re.M)) == 2  # one row per epoch, the best starred
    listed = kc("runs", ws=titanic_only)
    assert listed.exit_code == 0 and "titanic runs" in listed.stdout and "linear" in listed.stdout
    submitted = kc("submit", ws=titanic_only)
    assert submitted.exit_code == 0, submitted.output
    [csv] = (titanic_only / "submissions/titanic").glob("*.csv")
    checked = kc("validate", csv, ws=titanic_only)
    assert checked.exit_code == 0 and checked.stdout == f"{csv}: valid titanic submission (100 rows)\n"


def test_several_competitions_need_a_slug(fetched, kc):
    result = kc("runs", ws=fetched)
    assert result.exit_code == 1
    assert result.stderr == ("Error: several competitions here (digit-recognizer, titanic): name one, e.g. "
                             "`kc train digit-recognizer`\n")


def test_no_competitions_yet(workspace, kc):
    result = kc("train", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: no competitions/ in {workspace}: run `kc fetch titanic` here, or point "
                             "--workspace at the folder that holds competitions/\n")
    (workspace / "competitions").mkdir()
    result = kc("submit", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: no competition fetched in {workspace} yet: run `kc fetch titanic` first, "
                             "or name one\n")


def test_runs_before_training(titanic_only, kc):
    result = kc("runs", ws=titanic_only)
    assert result.exit_code == 0 and result.stdout == "no runs for titanic yet: try `kc train titanic`\n"


def test_models_lists_the_registry_or_those_fitting_a_competition(workspace, kc):
    from pipeline.models import MODELS

    def names(stdout: str) -> list[str]:
        return [line.split()[1] for line in stdout.splitlines() if line.startswith("│")]

    every = kc("models", ws=workspace)
    assert every.exit_code == 0 and names(every.stdout) == list(MODELS)
    titanic = kc("models", "titanic", ws=workspace)
    assert names(titanic.stdout) == ["linear", "knn", "tabular", "sk-logistic", "sk-forest", "sk-gbm", "lgbm",
                                    "catboost", "blend"]
    houses = kc("models", "house-prices", ws=workspace)
    assert names(houses.stdout) == ["linear", "knn", "tabular", "sk-ridge", "sk-forest", "sk-gbm", "lgbm",
                                   "catboost", "blend"]
    digits = kc("models", "digit-recognizer", ws=workspace)
    assert names(digits.stdout) == ["linear", "knn", "cnn", "sk-logistic", "sk-forest", "sk-gbm", "lgbm"]


def test_validate_takes_at_most_a_slug_and_a_file(titanic_only, kc):
    result = kc("validate", "titanic", "a.csv", "b.csv", ws=titanic_only)
    assert result.exit_code == 1 and result.stderr == "Error: expected [SLUG] FILE\n"
    result = kc("validate", "nope.csv", ws=titanic_only)
    assert result.exit_code == 1 and result.stderr == "Error: nope.csv: no such file\n"


@pytest.mark.parametrize("error", [UsageError, DataError, KaggleError, SubmissionError, type("Odd", (KcError,),
                                                                                          {"exit_code": 3})])
def test_a_kc_error_exits_with_its_own_code(error):
    @handled
    def command() -> None:
        raise error("what to do next")

    with pytest.raises(typer.Exit) as stop:
        command()
    assert stop.value.exit_code == error.exit_code == (3 if error.__name__ == "Odd" else 1)


def test_a_usage_error_is_one_line_that_says_where_help_is(titanic_only, kc):
    result = kc("train", "--zzz", ws=titanic_only)
    assert result.exit_code == 2
    assert result.stderr == "Error: No such option: --zzz (see `root train --help`)\n"
    result = kc()  # nothing at all: the help, not an error
    assert result.exit_code == 2 and "Usage: root [OPTIONS] COMMAND" in result.output


def test_the_live_display_counts_the_refits_epochs_from_the_number_it_is_given():
    from pipeline.cli.live import TrainDisplay
    from pipeline.core.epochs import Epoch

    display = TrainDisplay(epochs=12)
    with display.running():
        display.stage("training linear on 801 rows", None)
        display.epoch(Epoch(1, 0.5))
        display.stage("refitting linear on all 891 rows", 7)
        display.epoch(Epoch(1, 0.4))
    assert display.epochs == 7 and [r.fit for r in display.rows] == ["", "refit"]


def test_a_bug_in_kc_is_one_line_with_the_traceback_saved(fetched, kc, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("pipeline.pixels.arrays.sheet", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = kc("show", "digit-recognizer", ws=fetched)
    assert result.exit_code == 2
    [saved] = (tmp_path / "kc-tracebacks").iterdir()
    assert result.stderr == f"Error: unexpected ZeroDivisionError: division by zero (full traceback in {saved})\n"
    assert "Traceback" in saved.read_text() and "in broken" in saved.read_text()


@pytest.mark.slow
def test_demo_runs_offline_end_to_end(workspace, kc):
    result = kc("demo", ws=workspace)
    assert result.exit_code == 0, result.output
    # not a terminal: each finished model says its score on stderr (and a progress line comes every ~10 s)
    assert re.search(r"^titanic linear: accuracy \d+\.\d\d% out-of-fold on 5 folds \(\d+ s\)$", result.stderr, re.M)
    assert re.search(r"^digit-recognizer cnn: accuracy \d+\.\d\d% on a 500-row split \(\d+ s\)$", result.stderr, re.M)
    for slug, model in [("titanic", "linear"), ("titanic", "knn"), ("digit-recognizer", "linear"),
                        ("digit-recognizer", "knn"), ("digit-recognizer", "cnn")]:
        assert any(line.split()[:2] == ["│", slug] and model in line for line in result.stdout.splitlines()), model
    from pipeline.core import competitions
    from pipeline.core.workspace import Workspace
    from pipeline.submitting.checks import validate_file
    from pipeline.training.records import list_runs

    for slug in ("titanic", "digit-recognizer"):
        comp, ws = competitions.get(slug), Workspace(workspace)
        [csv] = (workspace / "submissions" / slug).glob("*.csv")
        assert csv.name == f"{list_runs(comp, ws)[0].run_id}.csv"  # the best run's
        assert validate_file(comp, ws, csv) > 0
        said = next(line for line in result.stdout.splitlines() if str(csv) in line)
        if slug == "titanic":  # kc bundles Titanic whole, and digits as a 1,000-row test sample
            assert said.endswith(f"{csv}: 418 rows, the full test set: ready to upload with `kc submit --upload`")
        else:
            assert said.endswith(f"{csv}: 1,000 rows from kc's bundled SAMPLE, not Kaggle's test set: practice only, "
                                 "not for upload")
    pngs = [line.strip() for line in result.stdout.splitlines() if line.strip().endswith(".png")]
    assert len(pngs) >= 8 and all(Path(p).is_file() for p in pngs)


def test_python_dash_m_pipeline_works():
    out = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "fetch" in out.stdout and "predict-image" in out.stdout


def test_unwritable_workspace_is_one_line(tmp_path, kc):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = kc("fetch", "titanic", ws=blocker)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_house_prices_end_to_end(workspace, kc):
    install(workspace, "house-prices")
    trained = kc("train", "--model", "sk-ridge", "--folds", "0", ws=workspace)
    assert trained.exit_code == 0, trained.output
    assert re.match(r"house-prices-advanced-regression-techniques sk-ridge: validation RMSE of logs 0\.\d{4} ",
                    trained.stdout)
    submitted = kc("submit", ws=workspace)
    assert submitted.exit_code == 0, submitted.output
    assert "validation RMSE of logs 0." in submitted.stdout


def test_help_gives_whole_summaries_on_a_wide_terminal():
    wide = {**__import__("os").environ, "COLUMNS": "160"}
    out = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, env=wide)
    assert "..." not in out.stdout.split("Commands:")[1]
    assert "  tune           Search a model's options with Optuna (TPE, pruning); each trial is a kc run scored " \
           "by the metric.\n" in out.stdout


def test_model_names_are_case_insensitive(titanic_only, kc):
    trained = kc("train", "-m", "Linear", "--epochs", "1", "--folds", "0", ws=titanic_only)
    assert trained.exit_code == 0, trained.output
    assert "titanic linear: validation accuracy" in trained.stdout
    assert [p.name.endswith("-linear") for p in (titanic_only / "competitions/titanic/runs").iterdir()] == [True]


def test_submit_names_how_its_run_was_scored(titanic_only, kc):
    for folds, scored in (("0", ", validation accuracy "), ("2", ", out-of-fold accuracy ")):
        assert kc("train", "-m", "knn", "--folds", folds, ws=titanic_only).exit_code == 0
        [run] = sorted((titanic_only / "competitions/titanic/runs").glob("*-knn*"))[-1:]
        shown = kc("submit", "titanic", "--run", run.name, ws=titanic_only)
        assert shown.exit_code == 0 and scored in shown.stdout.replace("\n", " ")


def test_make_demo_installs_kc_without_the_test_and_server_extras(tmp_path):
    repo = Path(__file__).parent.parent
    for name in ("Makefile", "pyproject.toml"):
        (tmp_path / name).write_bytes((repo / name).read_bytes())
    demo = subprocess.run(["make", "--no-print-directory", "-n", "demo"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    test = subprocess.run(["make", "--no-print-directory", "-n", "test"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert "pip install --quiet -e .\n" in demo and "[" not in demo
    assert "pip install --quiet -e '.[test,postgres,tensorboard]'" in test


def test_escapes_in_a_zip_entry_name_are_never_printed_raw(workspace, tmp_path, kc):
    import zipfile

    odd = tmp_path / "odd.zip"
    with zipfile.ZipFile(odd, "w") as zf:
        for p in (FIXTURES / "titanic").iterdir():
            zf.write(p, p.name)
        zf.writestr("\x1b[2Jcleared.txt", b"x")
    result = kc("fetch", "titanic", "--from", odd, ws=workspace)
    assert result.exit_code == 1 and "\x1b" not in result.output
    assert result.stderr == (f"Error: {odd}: the zip entry '\\x1b[2Jcleared.txt' has control characters in its "
                             "name; rename it\n")


def test_validate_of_a_device_says_it_is_no_file(titanic_only, kc):
    result = kc("validate", "titanic", "/dev/null", ws=titanic_only)
    assert result.exit_code == 1
    assert result.stderr == ("Error: /dev/null: not a regular file (a device or a pipe?); save the submission as a "
                             "CSV file first\n")


def test_report_out_a_folder_writes_the_page_inside_it(titanic_only, tmp_path, kc):
    result = kc("report", "titanic", "--out", tmp_path, ws=titanic_only)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "titanic-report.html").read_text().startswith("<!DOCTYPE html>")


def test_out_of_memory_is_one_line(titanic_only, kc, monkeypatch):
    from pipeline import api

    def too_big(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(api, "convert", too_big)
    result = kc("convert", "titanic", ws=titanic_only)
    assert result.exit_code == 1
    assert result.stderr == "Error: out of memory: close other programs, or use a machine with more memory\n"


def _huge_lot_area(workspace: Path, name: str) -> None:
    """House Prices installed, with LotArea 1e100 (beyond float32) in the first row of `name`."""
    from conftest import install

    path = install(workspace, "house-prices") / name
    lines = path.read_text().splitlines()
    header, first = lines[0].split(","), lines[1].split(",")
    first[header.index("LotArea")] = "1e100"
    path.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")


@pytest.mark.slow
def test_a_feature_beyond_float32_is_named_and_no_warning_reaches_stderr(workspace, kc):
    _huge_lot_area(workspace, "train.csv")
    result = kc("train", "house-prices", "--model", "sk-gbm", ws=workspace)  # trees read the raw features
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: train.csv: feature LotArea (row 1) is beyond what 32-bit features hold")
    assert "Warning" not in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_a_test_feature_beyond_float32_is_named_when_submitting(workspace, kc):
    # training never encodes the test rows; the submission that does names the cell
    _huge_lot_area(workspace, "test.csv")
    assert kc("train", "house-prices", "--model", "sk-gbm", "--folds", "0", ws=workspace).exit_code == 0
    result = kc("submit", "house-prices", ws=workspace)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: test.csv: feature LotArea (row 1) is beyond what 32-bit features hold")


@pytest.mark.slow
def test_a_table_that_cannot_be_encoded_stops_tune_before_any_trial(workspace, kc):
    _huge_lot_area(workspace, "train.csv")
    result = kc("tune", "house-prices", "--model", "sk-gbm", "--trials", "3", "--folds", "2", ws=workspace)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: train.csv: feature LotArea (row 1) is beyond what 32-bit features hold")


@pytest.mark.parametrize("args", [("runs",), ("submissions",), ("train", "--model", "knn", "--folds", "0"),
                                  ("submit",)], ids=["runs", "submissions", "train", "submit"])
def test_a_command_reads_the_competitions_description_once(kc, workspace, monkeypatch, args):
    # the CLI resolves the competition and hands the description to the library, which does not resolve it again
    from conftest import tiles

    from pipeline.core import competitions

    tiles(workspace)
    if args[0] == "submit":
        assert kc("train", "tiles", "--model", "knn", "--folds", "0", ws=workspace).exit_code == 0
    reads = []
    real_load = competitions.load
    monkeypatch.setattr(competitions, "load", lambda path: reads.append(path) or real_load(path))
    result = kc(args[0], "tiles", *args[1:], ws=workspace)
    assert result.exit_code == 0, result.output
    assert [p.name for p in reads] == ["competition.json"]


@pytest.mark.slow
def test_a_fit_cut_at_its_time_limit_is_said_and_marked_in_runs(titanic_only, kc, monkeypatch):
    from conftest import cut_tabular_fits

    cut_tabular_fits(monkeypatch)
    result = kc("train", "titanic", "--model", "tabular", "--epochs", "2", "--folds", "0", "--time-limit", "600",
                ws=titanic_only)
    assert result.exit_code == 0, result.output
    assert "cut at --time-limit: a fit kept its best epoch before the deadline (give more seconds for all)\n" \
        in result.stdout
    assert "stopped early, the model keeps it" in result.stdout  # the epoch table's caption
    runs = kc("runs", "titanic", ws=titanic_only)
    assert "tabular (cut at time limit)" in runs.stdout
