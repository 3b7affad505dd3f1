import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES, SLUGS, install, tiles

from pipeline.core import competitions
from pipeline.core.errors import KcError, SubmissionError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.ingest.sources import bundled_zip, fetch
from pipeline.submitting import checks, ledger
from pipeline.training import prepared, records, scoring, trainer

TITANIC = competitions.get("titanic")
DIGITS = competitions.get("digit-recognizer")
# the spreadsheet summary Kaggle's gender_submission.csv once carried in six extra columns (rows 3 and 4)
SUMMARY = {3: ",survived,152,,% Survival,36.36363636", 4: ",Total,418,,% Death,63.63636364"}


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """A workspace with both competitions fetched and one Titanic run, trained once for the module's tests."""
    root = tmp_path_factory.mktemp("trained") / "ws"
    root.mkdir()
    for slug in SLUGS:
        install(root, slug)
    # kept without test outputs: these tests check submit's own prediction (tests/training/test_prepared.py the other)
    return root, trainer.train(TITANIC, Workspace(root), records.TrainConfig(model="linear", params={"epochs": 3}),
                               predict_test=False)


@pytest.fixture
def trained(trained_once, tmp_path):
    """A copy of that workspace of the test's own (tests write submissions and logs into it), and its run."""
    template, run = trained_once
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    return root, records.read_run(Workspace(root).runs_dir("titanic") / run.run_id)


def good_titanic(ws_root: Path) -> pd.DataFrame:
    sample = pd.read_csv(ws_root / "competitions/titanic/gender_submission.csv")
    return sample.assign(Survived=(sample["PassengerId"] % 2).astype(int))


def as_spreadsheet_export(path: Path, summary: dict[int, str]) -> None:
    """Rewrite a two-column CSV the way a spreadsheet exports it: six more columns, empty but for `summary` rows."""
    lines = path.read_text().splitlines()
    out = [lines[0] + ",,,,,,"] + [line + "," + summary.get(row, ",,,,,") for row, line in enumerate(lines[1:], 1)]
    path.write_text("\r\n".join(out) + "\r\n")


def submission_files(ws_root: Path) -> list[str]:
    folder = ws_root / "submissions/titanic"
    return sorted(p.name for p in folder.glob("*.csv")) if folder.exists() else []


@pytest.mark.slow
def test_submit_writes_a_valid_file_and_logs_it(trained, kc):
    ws_root, run = trained
    result = kc("submit", "titanic", ws=ws_root)
    assert result.exit_code == 0, result.output
    [name] = submission_files(ws_root)
    assert name == f"{run.run_id}.csv"
    df = pd.read_csv(ws_root / "submissions/titanic" / name)
    assert list(df.columns) == ["PassengerId", "Survived"] and len(df) == 100
    assert df["PassengerId"].tolist() == list(range(892, 992)) and set(df["Survived"]) <= {0, 1}
    [entry] = ledger.read_log(TITANIC, Workspace(ws_root))
    assert isinstance(entry, ledger.LogEntry)
    assert entry.file == name and entry.run == run.run_id and entry.status == "written"
    assert entry.model == "linear" and entry.metric == "accuracy" and entry.valid_score == run.score
    assert entry.sha256 == ledger.sha256(ws_root / "submissions/titanic" / name)
    assert result.stdout.startswith(f"wrote {ws_root / 'submissions/titanic' / name} (valid format; linear run ")


@pytest.mark.slow
def test_an_identical_submission_is_not_written_again(trained, kc):
    ws_root, run = trained
    first = ledger.predict_run(TITANIC, Workspace(ws_root), None)
    second = ledger.predict_run(TITANIC, Workspace(ws_root), run.run_id)
    assert first.new and not second.new and second.path == first.path
    assert len(ledger.read_log(TITANIC, Workspace(ws_root))) == 1
    result = kc("submit", "titanic", ws=ws_root)
    assert result.exit_code == 0 and result.stdout.startswith(f"already written, unchanged: {first.path} ")
    assert submission_files(ws_root) == [f"{run.run_id}.csv"]


@pytest.mark.slow
def test_submit_digits_uses_image_ids(fetched):
    ws = Workspace(fetched)
    trainer.train(DIGITS, ws, records.TrainConfig(model="knn", params={"pca": 0}))
    written = ledger.predict_run(DIGITS, ws, None)
    df = pd.read_csv(written.path)
    assert list(df.columns) == ["ImageId", "Label"] and df["ImageId"].tolist() == list(range(1, 101))
    assert set(df["Label"]) <= set(range(10))


@pytest.mark.slow
def test_submit_house_prices_writes_positive_prices(workspace):
    install(workspace, "house-prices")
    houses = competitions.get("house-prices")
    ws = Workspace(workspace)
    trainer.train(houses, ws, records.TrainConfig(model="sk-ridge"))
    written = ledger.predict_run(houses, ws, None)
    df = pd.read_csv(written.path)
    sample = pd.read_csv(FIXTURES / houses.slug / "sample_submission.csv")
    assert list(df.columns) == ["Id", "SalePrice"] and df["Id"].tolist() == sample["Id"].tolist()
    assert (df["SalePrice"] > 1000).all()


@pytest.mark.slow
@pytest.mark.parametrize("features", ["houses", "generic"])
def test_submit_applies_the_encoder_saved_with_the_run_without_refitting(workspace, monkeypatch, features):
    from pipeline.core.dataset import load_dataset
    from pipeline.tables.encoder import TableEncoder

    install(workspace, "house-prices")
    houses, ws = competitions.get("house-prices"), Workspace(workspace)
    run = trainer.train(houses, ws, records.TrainConfig(model="blend", features=features, params={
        "members": "sk-ridge,lgbm"}, threads=1))
    data = load_dataset(houses, ws, features)
    expected = scoring.submitted(houses, prepared.test_outputs(houses, run, data))  # re-derived, as before

    def refit(*args, **kwargs):
        raise AssertionError("submit refitted the encoder")

    monkeypatch.setattr(TableEncoder, "fit", refit)
    written = ledger.predict_run(houses, ws, run.run_id)
    np.testing.assert_allclose(pd.read_csv(written.path)["SalePrice"], expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda d: d.iloc[:-1], "418 rows expected, got 417; missing PassengerId 1309"),
        (lambda d: d.drop(index=152), "418 rows expected, got 417; missing PassengerId 1044"),
        (lambda d: d.rename(columns={"Survived": "survived"}),
         "columns must be PassengerId,Survived in that order; got PassengerId,survived"),
        (lambda d: d[["Survived", "PassengerId"]],
         "columns must be PassengerId,Survived in that order; got Survived,PassengerId"),
        (lambda d: d.assign(Survived=d["Survived"].astype(float) * 0.5), "row 1: Survived '0.0' is not one of 0, 1"),
        (lambda d: d.assign(Survived=d["Survived"].where(d.index != 4, 2)), "row 5: Survived '2' is not one of 0, 1"),
        (lambda d: d.assign(Survived=d["Survived"].astype(object).where(d.index != 6, "")), "row 7: Survived is empty"),
        (lambda d: d.assign(PassengerId=d["PassengerId"].where(d.index != 3, 892)),
         "row 4: PassengerId 892 appears twice"),
        (lambda d: d.assign(PassengerId=d["PassengerId"].astype(object).where(d.index != 2, "x9")),
         "row 3: PassengerId 'x9' is not an integer id"),
    ],
)
def test_validate_names_the_problem(tmp_path, kc, mutate, error):
    ws_root = tmp_path / "ws"
    fetch("titanic", Workspace(ws_root), bundled_zip("titanic"))
    path = tmp_path / "mine.csv"
    mutate(good_titanic(ws_root)).to_csv(path, index=False)
    result = kc("validate", "titanic", path, ws=ws_root)
    assert result.exit_code == 1
    assert result.stderr == f"Error: mine.csv: {error}\n"


def test_validate_accepts_a_good_file(fetched, tmp_path, kc):
    path = tmp_path / "ok.csv"
    good_titanic(fetched).to_csv(path, index=False)
    result = kc("validate", "titanic", path, ws=fetched)
    assert result.exit_code == 0 and result.stdout == f"{path}: valid titanic submission (100 rows)\n"
    assert checks.validate_file(TITANIC, Workspace(fetched), path) == 100


def test_validate_takes_rows_in_any_order_as_kaggle_does(fetched, tmp_path, kc):
    path = tmp_path / "shuffled.csv"
    shuffled = good_titanic(fetched).sample(frac=1, random_state=0)
    shuffled.to_csv(path, index=False)
    result = kc("validate", "titanic", path, ws=fetched)
    assert result.exit_code == 0, result.output
    shuffled.assign(Survived=shuffled["Survived"].where(shuffled["PassengerId"] != 900, 7)).to_csv(path, index=False)
    row = int((shuffled["PassengerId"] == 900).to_numpy().argmax()) + 1
    result = kc("validate", "titanic", path, ws=fetched)
    assert result.stderr == f"Error: shuffled.csv: row {row}: Survived '7' is not one of 0, 1\n"


def test_validate_accepts_kaggles_own_sample(fetched, kc):
    result = kc("validate", "titanic", fetched / "competitions/titanic/gender_submission.csv", ws=fetched)
    assert result.exit_code == 0, result.output


def test_validate_reads_trailing_empty_columns_and_names_a_stray_cell(fetched, tmp_path, kc):
    path = tmp_path / "gender_submission.csv"
    path.write_bytes((FIXTURES / "titanic/gender_submission.csv").read_bytes())
    as_spreadsheet_export(path, {})
    assert path.read_text().splitlines()[1] == "892,0,,,,,,"
    result = kc("validate", "titanic", path, ws=fetched)
    assert result.exit_code == 0, result.output
    path.write_bytes((FIXTURES / "titanic/gender_submission.csv").read_bytes())
    as_spreadsheet_export(path, SUMMARY)
    result = kc("validate", "titanic", path, ws=fetched)
    assert result.exit_code == 1
    assert result.stderr == ("Error: gender_submission.csv: 8 columns, expected 2 (PassengerId,Survived); "
                             "row 3, column 4 holds 'survived'\n")


@pytest.mark.slow
def test_kaggles_old_quirky_sample_still_fetches_and_submits(workspace, tmp_path, kc):
    src = tmp_path / "titanic"
    src.mkdir()
    for name in TITANIC.files:
        (src / name).write_bytes((FIXTURES / "titanic" / name).read_bytes())
    as_spreadsheet_export(src / "gender_submission.csv", SUMMARY)
    assert kc("fetch", "titanic", "--from", src, ws=workspace).exit_code == 0
    assert kc("train", "--model", "knn", ws=workspace).exit_code == 0
    result = kc("submit", ws=workspace)
    assert result.exit_code == 0, result.output
    [name] = submission_files(workspace)
    assert pd.read_csv(workspace / "submissions/titanic" / name)["PassengerId"].tolist() == list(range(892, 992))


def test_validate_not_a_csv(fetched, tmp_path, kc):
    path = tmp_path / "junk.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = kc("validate", "titanic", path, ws=fetched)
    assert result.exit_code == 1 and result.stderr == "Error: junk.csv: binary data, not a CSV text file\n"


def test_validate_refuses_a_huge_file_before_reading_it(fetched, tmp_path, kc):
    path = tmp_path / "huge.csv"
    path.write_bytes(b"PassengerId,Survived\n" + b"892,0\n" * 400_000)
    result = kc("validate", "titanic", path, ws=fetched)
    assert result.exit_code == 1
    assert result.stderr == ("Error: huge.csv: 2.4 MB, far larger than a titanic submission (the sample is 0.00 MB); "
                             "is it the right file?\n")


def test_invalid_predictions_are_never_written(trained, kc, monkeypatch):
    ws_root, _ = trained
    from pipeline.models.linear import LinearModel

    real = LinearModel.predict_proba
    monkeypatch.setattr(LinearModel, "predict_proba", lambda self, X: real(self, X)[:-1])
    result = kc("submit", "titanic", ws=ws_root)
    assert result.exit_code == 1
    assert result.stderr == "Error: the model returned 99 predictions for 100 test rows\n"
    assert submission_files(ws_root) == []
    assert ledger.read_log(TITANIC, Workspace(ws_root)) == []


@pytest.mark.parametrize("bad", [2, -1])
def test_class_codes_outside_the_classes_are_refused(fetched, bad):
    codes = np.zeros(100, np.int64)
    codes[41] = bad
    with pytest.raises(SubmissionError, match="^row 42: "):
        checks.frame(TITANIC, Workspace(fetched), np.arange(892, 992), codes)


def test_nan_outputs_are_never_written(trained, monkeypatch):
    ws_root, _ = trained
    from pipeline.models.linear import LinearModel

    monkeypatch.setattr(LinearModel, "predict_proba", lambda self, X: np.full((len(X), 2), np.nan, np.float32))
    with pytest.raises(KcError):
        ledger.predict_run(TITANIC, Workspace(ws_root), None)
    assert submission_files(ws_root) == []


@pytest.mark.slow
def test_upload_polls_for_the_score_and_logs_it(trained, kaggle_server, kc):
    ws_root, run = trained
    kaggle_server.polls_until_scored = 2
    result = kc("submit", "titanic", "--upload", ws=ws_root)
    assert result.exit_code == 0, result.output
    assert "Kaggle scored it: public score 0.98765 (ref 1000)" in result.stdout
    [sub] = kaggle_server.submissions
    assert sub["description"].startswith(f"kc {run.run_id}: linear, valid ")
    [name] = submission_files(ws_root)
    assert sub["content"] == (ws_root / "submissions/titanic" / name).read_bytes()
    [entry] = ledger.read_log(TITANIC, Workspace(ws_root))
    assert entry.status == "COMPLETE" and entry.public_score == "0.98765" and entry.upload_ref == 1000
    assert kaggle_server.calls.count("ListSubmissions") >= 2


@pytest.mark.slow
def test_upload_without_waiting_then_refresh(trained, kaggle_server, kc):
    ws_root, _ = trained
    result = kc("submit", "titanic", "--upload", "--no-wait", "-m", "first try", ws=ws_root)
    assert result.exit_code == 0, result.output
    assert "not scored yet" in result.stdout and kaggle_server.submissions[0]["description"] == "first try"
    [entry] = ledger.read_log(TITANIC, Workspace(ws_root))
    assert entry.status == "PENDING" and entry.message == "first try"
    kaggle_server.polls_until_scored = 0  # some time later, Kaggle has scored it
    shown = kc("submissions", "titanic", ws=ws_root)
    assert shown.exit_code == 0 and "0.98765" in shown.stdout and "COMPLETE" in shown.stdout
    [entry] = ledger.read_log(TITANIC, Workspace(ws_root))
    assert entry.status == "COMPLETE" and entry.public_score == "0.98765"


@pytest.mark.slow
def test_no_submissions_left_today(trained, kaggle_server, kc):
    ws_root, _ = trained
    kaggle_server.allowed_today = 0
    result = kc("submit", "titanic", "--upload", ws=ws_root)
    assert result.exit_code == 1
    assert result.stderr == "Error: no titanic submissions left today (5 made): try again tomorrow (UTC)\n"
    assert kaggle_server.submissions == [] and "StartSubmissionUpload" not in kaggle_server.calls
    [entry] = ledger.read_log(TITANIC, Workspace(ws_root))  # the file was written, and the user was told where
    assert result.stdout.startswith(f"wrote {ws_root / 'submissions/titanic' / entry.file} (valid format; ")


@pytest.mark.slow
def test_a_failed_upload_is_an_error_not_a_success(trained, kaggle_server, kc):
    ws_root, _ = trained
    kaggle_server.fail_uploads = 1
    result = kc("submit", "titanic", "--upload", ws=ws_root)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Kaggle did not accept the upload of ")
    assert "Could not submit to competition" in result.stderr
    [entry] = ledger.read_log(TITANIC, Workspace(ws_root))
    assert entry.status == "written" and entry.upload_ref is None


@pytest.mark.slow
def test_predictions_from_the_bundled_sample_are_not_uploaded(workspace, kaggle_server, monkeypatch):
    ws = Workspace(workspace)
    with monkeypatch.context() as m:
        m.delenv("KAGGLE_USERNAME")
        m.delenv("KAGGLE_KEY")  # one without the other is a credential problem, named
        assert fetch("digit-recognizer", ws).sample
    trainer.train(DIGITS, ws, records.TrainConfig(model="knn", params={"pca": 0}))
    written = ledger.predict_run(DIGITS, ws, None)
    assert written.entry.sample
    with pytest.raises(UsageError, match=f"^{written.path.name} was predicted from kc's bundled SAMPLE of "
                                         "digit-recognizer, not Kaggle's data"):
        ledger.upload(DIGITS, ws, written.path, "try")
    assert kaggle_server.submissions == []


@pytest.mark.slow
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
def test_upload_server_errors(trained, kaggle_server, kc, method, status, error):
    ws_root, _ = trained
    kaggle_server.fail[method] = status
    result = kc("submit", "titanic", "--upload", ws=ws_root)
    assert result.exit_code == 1
    assert result.stderr == error


def test_submissions_offline_shows_the_log(trained, kc):
    ws_root, _ = trained
    kc("submit", "titanic", ws=ws_root)
    log = ws_root / "submissions/titanic/log.jsonl"
    log.write_text(log.read_text() + "not json\n")
    result = kc("submissions", "titanic", ws=ws_root)
    assert result.exit_code == 0 and "written" in result.stdout
    assert result.stderr == f"NOTE: 1 unreadable line(s) of {log} kept as they are\n"
    assert json.loads(log.read_text().splitlines()[0])["status"] == "written"
    assert len(ledger.read_log(TITANIC, Workspace(ws_root))) == 1


def test_a_submission_is_never_built_from_two_rows_with_one_id(workspace):
    comp = tiles(workspace)
    ws = Workspace(workspace)
    assert len(checks.frame(comp, ws, np.array([91, 92, 93]), np.array([0, 1, 0]))) == 3
    with pytest.raises(SubmissionError) as err:
        checks.frame(comp, ws, np.array([91, 92, 93, 93]), np.array([0, 1, 0, 1]))
    assert str(err.value) == "test.csv: ImageId 93 appears twice among the test rows; each test row needs its own id"


WRITER = """
import sys
import numpy as np
from pipeline.core import competitions
from pipeline.core.workspace import Workspace
from pipeline.submitting import ledger
from pipeline.submitting.checks import sample_ids

comp, ws = competitions.get("titanic"), Workspace.resolve(sys.argv[1])
ids = np.array([int(i) for i in sample_ids(comp, ws)])
for k in range(12):
    codes = np.random.default_rng(int(sys.argv[2]) * 100 + k).integers(0, 2, len(ids))
    ledger.write(comp, ws, ids, codes, f"run-{sys.argv[2]}-{k}", "linear", 0.5)
"""


@pytest.mark.slow
def test_submits_at_once_lose_no_log_line(titanic_only):
    import subprocess
    import sys

    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(titanic_only), str(n)]) for n in range(3)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    logged = sorted(e.file for e in ledger.read_log(TITANIC, Workspace(titanic_only)))
    assert logged == submission_files(titanic_only) and len(logged) == 36


def test_an_upload_killed_before_it_was_logged_is_found_not_sent_again(trained, kaggle_server, monkeypatch):
    ws_root, _ = trained
    ws = Workspace(ws_root)
    written = ledger.predict_run(TITANIC, ws, None)
    real = ledger.kaggle_api.submit

    def killed(*args):  # Kaggle accepts the file, then kc dies before writing the log (kill -9)
        real(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(ledger.kaggle_api, "submit", killed)
    with pytest.raises(KeyboardInterrupt):
        ledger.upload(TITANIC, ws, written.path, "first", wait=False)
    monkeypatch.setattr(ledger.kaggle_api, "submit", real)
    [entry] = ledger.read_log(TITANIC, ws)
    assert entry.status == "UPLOADING" and entry.upload_ref is None
    with pytest.raises(UsageError) as err:
        ledger.upload(TITANIC, ws, written.path, "again", wait=False)
    assert str(err.value) == (f"{written.path.name} is already on Kaggle (ref 1000, PENDING): an earlier upload was "
                              "cut off before kc logged it; `kc submissions titanic` shows its score")
    assert len(kaggle_server.submissions) == 1
    [entry] = ledger.read_log(TITANIC, ws)
    assert entry.upload_ref == 1000


def test_an_upload_killed_before_kaggle_had_it_is_undone_by_kc_submissions(trained, kaggle_server, monkeypatch):
    ws_root, _ = trained
    ws = Workspace(ws_root)
    written = ledger.predict_run(TITANIC, ws, None)
    real = ledger.kaggle_api.submit
    monkeypatch.setattr(ledger.kaggle_api, "submit", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        ledger.upload(TITANIC, ws, written.path, "first", wait=False)
    entries, note = ledger.refresh(TITANIC, ws)
    assert [e.status for e in entries] == ["written"] and note is None
    monkeypatch.setattr(ledger.kaggle_api, "submit", real)
    assert ledger.upload(TITANIC, ws, written.path, "now", wait=False).upload_ref == 1000


def test_an_empty_limits_answer_is_not_called_a_used_up_day(trained, kaggle_server, kc):
    ws_root, _ = trained
    kaggle_server.replies = {"GetSubmissionLimits": b"{}"}
    result = kc("submit", "titanic", "--upload", ws=ws_root)
    assert result.exit_code == 1 and kaggle_server.submissions == []
    assert result.stderr == ("Error: Kaggle allows no titanic submissions now, though none were made today: is the "
                             "competition closed? See https://www.kaggle.com/competitions/titanic\n")


def test_validate_refuses_a_very_wide_file_before_parsing_it(fetched, tmp_path, kc):
    import time

    path = tmp_path / "wide.csv"
    path.write_text("PassengerId,Survived" + "".join(f",c{i}" for i in range(30_000)) + "\n892,0\n")
    start = time.process_time()
    result = kc("validate", "titanic", path, ws=fetched)
    assert time.process_time() - start < 2
    assert result.exit_code == 1
    assert result.stderr == "Error: wide.csv: 30,002 columns in the header, expected 2 (PassengerId,Survived)\n"


@pytest.mark.parametrize("line", ['{"time": "t", "file": "a.csv", "sha256": "s", "run": "r", "model": "m", '
                                  '"valid_score": "0.5"}',
                                  '{"time": "t", "file": "a.csv", "sha256": "s", "run": "r", "model": "m", '
                                  '"upload_ref": "x", "status": "PENDING"}',
                                  '{"time": "t", "file": "a.csv", "sha256": "s", "run": "r", "model": "m", '
                                  '"runs": {"a": "0.5", "b": NaN}}',
                                  '{"time": "t", "file": "a.csv", "sha256": "s", "run": "r", "model": "m", '
                                  '"runs": {"a": 1' + "0" * 400 + '}}',  # no float holds it: OverflowError
                                  '{"time": "t", "file": "a.csv", "sha256": "s", "run": "r", "model": "m", '
                                  '"valid_score": 1' + "0" * 400 + '}',
                                  '{"time": "t", "file": "a.csv", "sha256": "s", "run": "r", "model": "m", '
                                  '"runs": {"a": 1e308}}',  # a weight is between 0 and 1
                                  "[" * 200_000 + "]" * 200_000])
def test_a_damaged_log_line_is_kept_apart_and_the_rest_still_works(trained, kc, line):
    ws_root, _ = trained
    assert kc("submit", "titanic", ws=ws_root).exit_code == 0
    log = ws_root / "submissions/titanic/log.jsonl"
    log.write_text(log.read_text() + line + "\n")
    for command in (("submissions", "titanic"), ("report", "titanic")):
        result = kc(*command, ws=ws_root)
        assert result.exit_code == 0, (command, result.output)
    assert len(ledger.read_log(TITANIC, Workspace(ws_root))) == 1


def test_an_ensemble_too_big_for_a_log_line_is_refused_before_its_file_is_written(titanic_only):
    from pipeline.submitting.checks import sample_ids

    ws = Workspace(titanic_only)
    ids = np.array([int(i) for i in sample_ids(TITANIC, ws)])
    runs = {f"{'r' * 240}-{k}": 1 / 300 for k in range(300)}  # 300 long run folder names: over 64 KB as JSON
    with pytest.raises(UsageError, match="300 runs with these names are more than one submission log line holds"):
        ledger.write(TITANIC, ws, ids, np.zeros(len(ids), int), "ensemble-mean-300", "linear", 0.5, runs=runs)
    assert submission_files(titanic_only) == [] and ledger.read_log(TITANIC, ws) == []
    written = ledger.write(TITANIC, ws, ids, np.zeros(len(ids), int), "ensemble-mean-8", "linear", 0.5,
                           runs=dict.fromkeys("abcdefgh", 0.125))
    assert written.entry.blended == "a (0.12), b (0.12), c (0.12), d (0.12), e (0.12), f (0.12) and 2 more"


def test_duplicate_ids_in_the_sample_name_the_sample(titanic_only, tmp_path, kc):
    sample = titanic_only / "competitions/titanic/gender_submission.csv"
    lines = sample.read_text().splitlines()
    lines[3] = lines[2]
    sample.write_text("\n".join(lines) + "\n")
    mine = tmp_path / "mine.csv"
    mine.write_text("\n".join(lines) + "\n")
    result = kc("validate", "titanic", mine, ws=titanic_only)
    assert result.exit_code == 1
    assert result.stderr == ("Error: gender_submission.csv: row 3, column PassengerId: id 893 appears twice in the "
                             "sample submission; fetch titanic again with --force\n")


@pytest.mark.slow
def test_submit_passes_over_runs_of_data_that_has_since_changed(kc, titanic_only):
    import os

    from pipeline.core import competitions
    from pipeline.core.errors import DataError
    from pipeline.core.workspace import Workspace
    from pipeline.interpretation import explain
    from pipeline.training import records, trainer

    comp, ws = competitions.get("titanic", titanic_only), Workspace(titanic_only)
    stale = trainer.train(comp, ws, records.TrainConfig(model="linear", folds=2))
    train_csv = titanic_only / "competitions/titanic/train.csv"
    os.utime(train_csv, ns=(train_csv.stat().st_atime_ns, train_csv.stat().st_mtime_ns + 10**9))  # the data changed
    fresh = trainer.train(comp, ws, records.TrainConfig(model="knn", folds=2))
    assert stale.score > fresh.score  # the stale run is the best on paper
    submitted = kc("submit", "titanic", ws=titanic_only)
    assert submitted.exit_code == 0, submitted.output
    assert fresh.run_id in submitted.stdout and stale.run_id not in submitted.stdout
    named = kc("submit", "titanic", "--run", stale.run_id, ws=titanic_only)  # named: refused, as before
    assert named.exit_code == 1 and "trained on other data" in named.stderr
    with pytest.raises(DataError, match="trained on other data"):
        explain(comp, ws, stale.run_id)


@pytest.mark.parametrize("edit", [{"classes": ["1", "0"]}, {"metric": "log-loss"}])
def test_a_run_trained_under_another_description_is_not_submitted(kc, workspace, edit):
    layouts = FIXTURES / "layouts"
    assert kc("fetch", "santander", "--from", layouts / "santander", "--metric", "AUC", ws=workspace).exit_code == 0
    path = workspace / "competitions/santander/competition.json"
    original = json.loads(path.read_text())
    path.write_text(json.dumps({**original, **edit}))
    assert kc("train", "santander", "--model", "sk-logistic", ws=workspace).exit_code == 0
    path.write_text(json.dumps(original))  # trained with the classes flipped or scored by log loss; now put back
    refused = kc("submit", "santander", ws=workspace)  # it wrote the flipped probabilities, or the log loss as AUC
    assert refused.exit_code == 1 and "competition.json's target, classes, metric or value_floor changed since" in \
        refused.stderr
    listed = kc("runs", "santander", ws=workspace).stdout  # it ranked the stale run by its score, unmarked
    assert ("(stale)" in listed and "kc submit passes over them" in listed) == ("classes" in edit)
    assert ("(log-loss)" in listed) == ("metric" in edit)
    assert kc("train", "santander", "--model", "sk-logistic", ws=workspace).exit_code == 0
    assert "repeats" not in kc("runs", "santander", ws=workspace).stdout  # one run per description: two results
    runs = kc("runs", "santander", ws=workspace).stdout.splitlines()
    fresh = next(line for line in runs if "sk-logistic" in line and "(" not in line.split("│")[3])
    assert runs.index(fresh) < next(i for i, line in enumerate(runs) if "(stale)" in line or "(log-loss)" in line)
    written = kc("submit", "santander", ws=workspace)
    assert written.exit_code == 0 and "ROC AUC" in written.stdout


def test_fetching_the_same_files_again_keeps_the_runs(kc, workspace, fixture_zips):
    assert kc("fetch", "titanic", "--from", fixture_zips["titanic"], ws=workspace).exit_code == 0
    assert kc("train", "titanic", "--model", "sk-logistic", ws=workspace).exit_code == 0
    again = kc("fetch", "titanic", "--from", fixture_zips["titanic"], "--force", ws=workspace)
    assert again.exit_code == 0
    written = kc("submit", "titanic", ws=workspace)  # it said every run was trained on other data
    assert written.exit_code == 0, written.output


def test_a_run_saved_before_the_description_key_is_judged_by_its_metric(kc, workspace):
    layouts = FIXTURES / "layouts"
    assert kc("fetch", "santander", "--from", layouts / "santander", "--metric", "AUC", ws=workspace).exit_code == 0
    assert kc("train", "santander", "--model", "sk-logistic", ws=workspace).exit_code == 0
    run = next((workspace / "competitions/santander/runs").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["learning_key"]  # as kc wrote runs before it kept the key
    (run / "metrics.json").write_text(json.dumps(metrics))
    path = workspace / "competitions/santander/competition.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "metric": "log-loss"}))
    refused = kc("submit", "santander", ws=workspace)  # its AUC was written under log loss's name
    assert refused.exit_code == 1 and "train again" in refused.stderr
    path.write_text(json.dumps({**json.loads(path.read_text()), "metric": "roc-auc"}))
    assert kc("submit", "santander", ws=workspace).exit_code == 0
