import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline import competitions, runs, submit
from pipeline.cli import app
from pipeline.workspace import Workspace

TITANIC = competitions.get("titanic")
DIGITS = competitions.get("digit-recognizer")
runner = CliRunner()


def kc(ws, *args):
    return runner.invoke(app, ["--workspace", str(ws), *args])


@pytest.fixture
def trained(fetched):
    ws = Workspace(fetched)
    run = runs.train(TITANIC, ws, runs.TrainConfig(model="linear", params={"epochs": 3}))
    return fetched, run


def good_titanic(ws_root) -> pd.DataFrame:
    sample = pd.read_csv(ws_root / "competitions/titanic/gender_submission.csv").iloc[:, :2]
    return sample.assign(Survived=(sample["PassengerId"] % 2).astype(int))


def submission_files(ws_root):
    folder = ws_root / "submissions/titanic"
    return sorted(p.name for p in folder.glob("*.csv")) if folder.exists() else []


def test_submit_writes_a_valid_file_and_logs_it(trained):
    ws_root, run = trained
    result = kc(ws_root, "submit", "titanic")
    assert result.exit_code == 0, result.output
    [name] = submission_files(ws_root)
    assert name.endswith(f"-{run.run_id}.csv")
    df = pd.read_csv(ws_root / "submissions/titanic" / name)
    assert list(df.columns) == ["PassengerId", "Survived"] and len(df) == 100
    assert df["PassengerId"].tolist() == list(range(892, 992)) and set(df["Survived"]) <= {0, 1}
    [entry] = submit.read_log(TITANIC, Workspace(ws_root))
    assert entry["file"] == name and entry["run"] == run.run_id and entry["status"] == "written"
    assert entry["sha256"] == submit.sha256(ws_root / "submissions/titanic" / name)


def test_submit_digits_uses_image_ids(fetched):
    ws = Workspace(fetched)
    runs.train(DIGITS, ws, runs.TrainConfig(model="knn", params={"pca": 0}))
    written = submit.predict_run(DIGITS, ws, None)
    df = pd.read_csv(written.path)
    assert list(df.columns) == ["ImageId", "Label"] and df["ImageId"].tolist() == list(range(1, 101))


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda d: d.iloc[:-1], "418 rows expected, got 417; missing PassengerId 1309"),
        (lambda d: d.drop(index=152), "418 rows expected, got 417; missing PassengerId 1044"),
        (lambda d: d.rename(columns={"Survived": "survived"}),
         "columns must be PassengerId,Survived in that order; got PassengerId,survived"),
        (lambda d: d[["Survived", "PassengerId"]],
         "columns must be PassengerId,Survived in that order; got Survived,PassengerId"),
        (lambda d: d.assign(Survived=d["Survived"].astype(float) * 0.5), "row 1: Survived '0.0' is not an integer"),
        (lambda d: d.assign(Survived=d["Survived"].where(d.index != 4, 2)), "row 5: Survived 2 is not one of 0, 1"),
        (lambda d: d.assign(Survived=d["Survived"].astype(object).where(d.index != 6, "")), "row 7: Survived is empty"),
        (lambda d: d.iloc[::-1], "ids must follow the sample submission's order; row 1 has PassengerId 1309, "
                                 "expected 892"),
        (lambda d: d.assign(PassengerId=d["PassengerId"].where(d.index != 3, 892)),
         "row 4: PassengerId 892 appears twice"),
    ],
)
def test_validate_names_the_problem(tmp_path, mutate, error):
    ws_root = tmp_path / "ws"
    (ws_root / "competitions").mkdir(parents=True)
    from pipeline.fetch import bundled_zip, fetch

    fetch(TITANIC, Workspace(ws_root), bundled_zip(TITANIC))
    path = tmp_path / "mine.csv"
    mutate(good_titanic(ws_root)).to_csv(path, index=False)
    result = kc(ws_root, "validate", "titanic", str(path))
    assert result.exit_code == 1
    assert result.stderr == f"Error: mine.csv: {error}\n"


def test_validate_accepts_a_good_file(fetched, tmp_path):
    path = tmp_path / "ok.csv"
    good_titanic(fetched).to_csv(path, index=False)
    result = kc(fetched, "validate", "titanic", str(path))
    assert result.exit_code == 0 and "valid titanic submission (100 rows)" in result.stdout


def test_validate_reads_kaggles_own_quirky_sample(fetched):
    result = kc(fetched, "validate", "titanic", str(fetched / "competitions/titanic/gender_submission.csv"))
    assert result.exit_code == 1
    assert result.stderr == ("Error: gender_submission.csv: 8 columns, expected 2 (PassengerId,Survived); "
                             "row 3, column 4 holds 'survived'\n")


def test_validate_not_a_csv(fetched, tmp_path):
    path = tmp_path / "junk.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = kc(fetched, "validate", "titanic", str(path))
    assert result.exit_code == 1 and result.stderr.startswith("Error: junk.csv: ")
    assert result.stderr.count("\n") == 1


def test_invalid_predictions_are_never_written(trained, monkeypatch):
    ws_root, _ = trained
    from pipeline.models.linear import LinearModel

    monkeypatch.setattr(LinearModel, "predict", lambda self, X: (self.predict_proba(X)[:, 1] > 0.5)[:-1] * 1)
    result = kc(ws_root, "submit", "titanic")
    assert result.exit_code == 1
    assert result.stderr == "Error: the model returned 99 predictions for 100 test rows\n"
    assert submission_files(ws_root) == []
    monkeypatch.setattr(LinearModel, "predict", lambda self, X: (self.predict_proba(X)[:, 1] > 0.5) * 3)
    result = kc(ws_root, "submit", "titanic")
    assert result.exit_code == 1 and result.stderr.startswith("Error: row ") and "is not one of 0, 1" in result.stderr
    assert submission_files(ws_root) == []


def test_upload_polls_for_the_score_and_logs_it(trained, kaggle_server):
    ws_root, run = trained
    kaggle_server.polls_until_scored = 2
    result = kc(ws_root, "submit", "titanic", "--upload")
    assert result.exit_code == 0, result.output
    assert "Kaggle scored it: public score 0.98765 (ref 1000)" in result.stdout
    [sub] = kaggle_server.submissions
    assert sub["description"].startswith(f"kc {run.run_id}: linear, valid ")
    [name] = submission_files(ws_root)
    assert sub["content"] == (ws_root / "submissions/titanic" / name).read_bytes()
    [entry] = submit.read_log(TITANIC, Workspace(ws_root))
    assert entry["status"] == "COMPLETE" and entry["public_score"] == "0.98765" and entry["upload_ref"] == 1000
    assert kaggle_server.calls.count("ListSubmissions") >= 2


def test_upload_without_waiting_then_refresh(trained, kaggle_server):
    ws_root, _ = trained
    result = kc(ws_root, "submit", "titanic", "--upload", "--no-wait", "-m", "first try")
    assert result.exit_code == 0, result.output
    assert "not scored yet" in result.stdout and kaggle_server.submissions[0]["description"] == "first try"
    kaggle_server.polls_until_scored = 0  # some time later, Kaggle has scored it
    shown = kc(ws_root, "submissions", "titanic")
    assert shown.exit_code == 0 and "0.98765" in shown.stdout and "COMPLETE" in shown.stdout


def test_no_submissions_left_today(trained, kaggle_server):
    ws_root, _ = trained
    kaggle_server.allowed_today = 0
    result = kc(ws_root, "submit", "titanic", "--upload")
    assert result.exit_code == 1
    assert result.stderr == "Error: no titanic submissions left today (5 made): try again tomorrow (UTC)\n"
    assert kaggle_server.submissions == [] and "StartSubmissionUpload" not in kaggle_server.calls


def test_a_failed_upload_is_an_error_not_a_success(trained, kaggle_server):
    ws_root, _ = trained
    kaggle_server.fail_uploads = 1
    result = kc(ws_root, "submit", "titanic", "--upload")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Kaggle did not accept the upload of ")
    assert "Could not submit to competition" in result.stderr
    [entry] = submit.read_log(TITANIC, Workspace(ws_root))
    assert entry["status"] == "written" and entry["upload_ref"] is None


@pytest.mark.parametrize(
    ("method", "status", "error"),
    [
        ("StartSubmissionUpload", 403,
         "Error: Kaggle refused to submit to titanic (403): accept the rules at "
         "https://www.kaggle.com/competitions/titanic/rules, then run the command again\n"),
        ("GetSubmissionLimits", 401, "Error: Kaggle rejected your credentials (401) while trying to read the "
                                     "submission limits of titanic: create a new API token at "
                                     "https://www.kaggle.com/settings and save it as ~/.kaggle/kaggle.json\n"),
        ("CreateSubmission", 429, "Error: Kaggle is rate-limiting you (429) while trying to submit to titanic: "
                                  "wait a few minutes, then try again\n"),
        ("CreateSubmission", 404, "Error: Kaggle has no competition 'titanic' (404) to submit to titanic: "
                                  "check the slug\n"),
    ],
)
def test_upload_server_errors(trained, kaggle_server, method, status, error):
    ws_root, _ = trained
    kaggle_server.fail[method] = status
    result = kc(ws_root, "submit", "titanic", "--upload")
    assert result.exit_code == 1
    assert result.stderr == error


def test_ensemble_scores_on_the_shared_split(fetched):
    ws = Workspace(fetched)
    a = runs.train(TITANIC, ws, runs.TrainConfig(model="linear", params={"epochs": 3}))
    b = runs.train(TITANIC, ws, runs.TrainConfig(model="knn"))
    c = runs.train(TITANIC, ws, runs.TrainConfig(model="sk-logistic"))
    written, score = submit.ensemble(TITANIC, ws, [a.run_id, b.run_id, c.run_id], "vote")
    assert score is not None and 0.5 < score <= 1
    assert written.path.name.endswith("ensemble-vote-3.csv")
    log = submit.read_log(TITANIC, ws)
    assert log[-1]["model"] == "linear+knn+sk-logistic"
    result = kc(fetched, "ensemble", "titanic", a.run_id)
    assert result.exit_code == 1 and result.stderr == "Error: an ensemble needs at least two runs\n"


def test_submissions_offline_shows_the_log(trained):
    ws_root, _ = trained
    kc(ws_root, "submit", "titanic")
    result = kc(ws_root, "submissions", "titanic")
    assert result.exit_code == 0 and "written" in result.stdout
    assert json.loads((ws_root / "submissions/titanic/log.jsonl").read_text().splitlines()[0])["status"] == "written"
