"""kaggle_api against the fake server, through the real kaggle client: bounded waits and named credential problems."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES

from pipeline.core import competitions
from pipeline.core.errors import KaggleError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.ingest import kaggle_api, sources

TITANIC = competitions.get("titanic")
PATIENCE = 10.0  # seconds a call may take against a silent server, with a 1 s timeout
SETTINGS = "https://www.kaggle.com/settings"
CONFIG_FIX = f'save the API token from {SETTINGS} there (it holds {{"username": ..., "key": ...}})'


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kaggle calls give up after 1 s of silence."""
    monkeypatch.setenv("KC_KAGGLE_TIMEOUT", "1")


@pytest.fixture
def config_file() -> Iterator[Path]:
    """The kaggle.json the client reads (conftest points KAGGLE_CONFIG_DIR at the test home); removed afterwards."""
    path = Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    assert not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def call_within(seconds: float, call: Callable[[], Any]) -> tuple[Any, float]:
    """Run `call` in a thread; fail if it is still waiting after `seconds`. Returns what it returned (or raised)
    and how long it took.

    A thread, so that a missing timeout fails this test instead of hanging the suite (the fake server releases
    the stuck call when it shuts down).
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["value"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting for Kaggle after {seconds} s"
    return outcome.get("value"), time.monotonic() - start


def submission_file(tmp_path: Path) -> Path:
    path = tmp_path / "submission.csv"
    path.write_text("PassengerId,Survived\n892,0\n")
    return path


# Timeouts


def test_timeouts_default_and_override(monkeypatch):
    assert kaggle_api.timeouts() == (10.0, 60.0)
    monkeypatch.setenv("KC_KAGGLE_TIMEOUT", "30")
    assert kaggle_api.timeouts() == (10.0, 30.0)
    monkeypatch.setenv("KC_KAGGLE_TIMEOUT", "0.5")
    assert kaggle_api.timeouts() == (0.5, 0.5)


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan", "inf", "1e12"])
def test_a_bad_timeout_setting_is_a_usage_error(monkeypatch, kaggle_server, value):
    monkeypatch.setenv("KC_KAGGLE_TIMEOUT", value)
    with pytest.raises(UsageError, match=re.escape(f"KC_KAGGLE_TIMEOUT must be a number of seconds above 0 (at most "
                                                   f"86,400), not '{value}'")):
        kaggle_api.list_submissions(TITANIC)
    assert kaggle_server.calls == []


@pytest.mark.slow
@pytest.mark.parametrize("stalled", ["DownloadDataFiles", "file"])
def test_download_from_a_silent_server_times_out(kaggle_server, fast, tmp_path, stalled):
    kaggle_server.stall = {stalled}
    error, elapsed = call_within(PATIENCE, lambda: kaggle_api.download("titanic", tmp_path))
    assert isinstance(error, KaggleError)
    assert str(error) == ("Kaggle did not answer within 1 s while trying to download titanic: check your network "
                          "and try again, or use `kc fetch titanic --from FILE.zip` with a downloaded copy")
    assert elapsed < PATIENCE and "DownloadDataFiles" in kaggle_server.calls


@pytest.mark.slow
def test_submission_limits_from_a_silent_server_time_out(kaggle_server, fast):
    kaggle_server.stall = {"GetSubmissionLimits"}
    error, elapsed = call_within(PATIENCE, lambda: kaggle_api.submission_limits(TITANIC))
    assert str(error) == ("Kaggle did not answer within 1 s while trying to read the submission limits of titanic: "
                          "check your network and try again")
    assert isinstance(error, KaggleError) and elapsed < PATIENCE
    assert kaggle_server.calls == ["GetSubmissionLimits"]


@pytest.mark.slow
@pytest.mark.parametrize("stalled", ["StartSubmissionUpload", "upload", "CreateSubmission"])
def test_submit_to_a_silent_server_times_out(kaggle_server, fast, tmp_path, stalled):
    kaggle_server.stall = {stalled}
    error, elapsed = call_within(PATIENCE, lambda: kaggle_api.submit(TITANIC, submission_file(tmp_path), "m"))
    assert isinstance(error, KaggleError) and elapsed < PATIENCE
    assert str(error) == ("Kaggle did not answer within 1 s while trying to submit to titanic: "
                          "check your network and try again")
    assert kaggle_server.submissions == []


@pytest.mark.slow
def test_list_submissions_from_a_silent_server_times_out(kaggle_server, fast):
    kaggle_server.stall = {"ListSubmissions"}
    error, elapsed = call_within(PATIENCE, lambda: kaggle_api.list_submissions(TITANIC))
    assert isinstance(error, KaggleError) and elapsed < PATIENCE
    assert str(error) == ("Kaggle did not answer within 1 s while trying to list your submissions to titanic: "
                          "check your network and try again")


def test_the_same_calls_work_when_the_server_answers(kaggle_server, fast, tmp_path):
    assert kaggle_api.download("titanic", tmp_path).read_bytes() == kaggle_server.zips["titanic"]
    assert kaggle_api.submission_limits(TITANIC) == kaggle_api.Limits(allowed_now=5, today=0)
    ref = kaggle_api.submit(TITANIC, submission_file(tmp_path), "first")
    [listed] = kaggle_api.list_submissions(TITANIC)
    assert listed.ref == ref == 1000 and listed.description == "first"
    assert kaggle_server.submissions[0]["content"] == submission_file(tmp_path).read_bytes()


def test_a_refused_upload_names_the_file(kaggle_server, tmp_path):
    kaggle_server.fail_uploads = 1
    with pytest.raises(KaggleError) as err:
        kaggle_api.submit(TITANIC, submission_file(tmp_path), "m")
    assert str(err.value) == ("Kaggle did not accept the upload of submission.csv: Could not submit to competition "
                              "(HTTP 500), try again later")
    assert "CreateSubmission" not in kaggle_server.calls


@pytest.mark.slow
def test_forced_fetch_from_a_silent_server_keeps_the_copy_there_is_and_fails(workspace, kaggle_server, fast, kc):
    ws = Workspace(workspace)
    sources.fetch("titanic", ws, FIXTURES / "titanic")
    before = (workspace / "competitions/titanic/train.csv").read_bytes()
    kaggle_server.stall = {"DownloadDataFiles"}
    result, elapsed = call_within(PATIENCE, lambda: kc("fetch", "titanic", "--force", ws=workspace))
    assert result.exit_code == 1 and elapsed < PATIENCE
    assert result.stderr == ("Error: Kaggle did not answer within 1 s while trying to download titanic: check your "
                             "network and try again, or use `kc fetch titanic --from FILE.zip` with a downloaded copy "
                             "(the file copy already there is kept)\n")
    assert (workspace / "competitions/titanic/train.csv").read_bytes() == before
    assert sources.require_fetched(TITANIC, ws)


@pytest.mark.slow
def test_cli_fetch_from_a_silent_server(workspace, kaggle_server, fast, kc):
    kaggle_server.stall = {"file"}
    result, elapsed = call_within(PATIENCE, lambda: kc("fetch", "titanic", ws=workspace))
    assert result.exit_code == 1 and elapsed < PATIENCE
    assert result.stderr == ("Error: Kaggle did not answer within 1 s while trying to download titanic: check your "
                             "network and try again, or use `kc fetch titanic --from FILE.zip` with a downloaded "
                             "copy\n")


# Credentials


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"username": "kc-test", "key": ', "is not valid JSON at line 1"),
        ("", "is empty"),
        ('["kc-test", "secret-key"]', "does not hold a JSON object"),
        ('{"username": "kc-test"}', "has no 'key'"),
        ('{"competition": "titanic"}', "has no 'username' or 'key'"),
    ],
)
def test_a_broken_kaggle_json_is_named(config_file, content, problem):
    config_file.write_text(content)
    assert kaggle_api.credentials_configured()
    with pytest.raises(KaggleError) as err:
        kaggle_api.list_submissions(TITANIC)
    assert str(err.value) == f"{config_file} {problem}: {CONFIG_FIX}"


def test_fetch_names_a_broken_kaggle_json_instead_of_no_credentials(config_file, workspace, kc):
    config_file.write_text("username: kc-test\nkey: secret-key\n")
    result = kc("fetch", "titanic", ws=workspace)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {config_file} is not valid JSON at line 1: {CONFIG_FIX}\n"


def test_a_good_kaggle_json_is_read_by_the_client(config_file, kaggle_server, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    config_file.write_text(json.dumps({"username": kaggle_server.username, "key": kaggle_server.key}))
    config_file.chmod(0o600)
    assert kaggle_api.list_submissions(TITANIC) == []
    assert kaggle_server.calls == ["ListSubmissions"]


def test_kaggle_json_and_environment_combine(config_file, kaggle_server, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    config_file.write_text(json.dumps({"username": kaggle_server.username}))
    assert kaggle_api.list_submissions(TITANIC) == []


def test_a_broken_kaggle_json_does_not_matter_when_the_environment_has_credentials(config_file, kaggle_server):
    config_file.write_text("not json")
    assert kaggle_api.list_submissions(TITANIC) == []


def test_half_a_key_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "kc-test")
    with pytest.raises(KaggleError, match="^KAGGLE_USERNAME is set but KAGGLE_KEY is not: set both"):
        kaggle_api.list_submissions(TITANIC)


def test_no_credentials_at_all(kaggle_server, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    assert not kaggle_api.credentials_configured()
    with pytest.raises(KaggleError, match=r"^no Kaggle credentials: create an API token"):
        kaggle_api.list_submissions(TITANIC)


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ('{"username": "kc-test", "key": "secret-key"}', "KAGGLE_API_TOKEN holds JSON, not a token"),
        ("kc test token", "KAGGLE_API_TOKEN is not an API token (it holds spaces or other stray characters)"),
        ("~/.kaggle/token.txt", "KAGGLE_API_TOKEN names the file ~/.kaggle/token.txt, which does not exist"),
    ],
)
def test_a_malformed_token_is_named(kaggle_server, monkeypatch, token, problem):
    monkeypatch.setenv("KAGGLE_API_TOKEN", token)
    with pytest.raises(KaggleError) as err:
        kaggle_api.list_submissions(TITANIC)
    assert str(err.value).startswith(problem)
    assert kaggle_server.calls == []


def test_an_empty_token_file_is_named(monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    monkeypatch.setenv("KAGGLE_API_TOKEN", str(token_file))
    with pytest.raises(KaggleError, match=f"^KAGGLE_API_TOKEN names {re.escape(str(token_file))}, which is empty"):
        kaggle_api.list_submissions(TITANIC)


def test_a_token_kaggle_rejects_is_named(kaggle_server, monkeypatch):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_not-the-right-one")  # a key is set too: the token must still work
    with pytest.raises(KaggleError) as err:
        kaggle_api.list_submissions(TITANIC)
    assert str(err.value) == ("Kaggle did not accept the API token in KAGGLE_API_TOKEN (invalid or expired): "
                              f"create a new one at {SETTINGS}")
    assert "IntrospectToken" in kaggle_server.calls and "ListSubmissions" not in kaggle_server.calls


@pytest.mark.parametrize("in_file", [False, True])
def test_a_good_token_works(kaggle_server, monkeypatch, tmp_path, in_file):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    token = kaggle_server.token
    if in_file:
        (tmp_path / "token").write_text(token + "\n")
        token = str(tmp_path / "token")
    monkeypatch.setenv("KAGGLE_API_TOKEN", token)
    assert kaggle_api.list_submissions(TITANIC) == []
    assert kaggle_server.calls[-1] == "ListSubmissions"


@pytest.mark.slow
def test_checking_a_token_with_a_silent_server_times_out(kaggle_server, monkeypatch, fast):
    monkeypatch.setenv("KAGGLE_API_TOKEN", kaggle_server.token)
    kaggle_server.stall = {"IntrospectToken"}
    error, elapsed = call_within(PATIENCE, lambda: kaggle_api.list_submissions(TITANIC))
    assert isinstance(error, KaggleError) and elapsed < PATIENCE
    assert str(error) == ("Kaggle did not answer within 1 s while trying to check your Kaggle credentials: "
                          "check your network and try again")


def test_readable_credentials_get_a_warning(config_file):
    config_file.write_text(json.dumps({"username": "kc-test", "key": "secret-key"}))
    config_file.chmod(0o644)
    assert kaggle_api.credentials_warning() == (
        f"other users of this computer can read your Kaggle credentials in {config_file}: "
        f"run `chmod 600 {config_file}`"
    )
    config_file.chmod(0o600)
    assert kaggle_api.credentials_warning() is None


def test_a_readable_token_file_gets_a_warning(monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("KGAT_x\n")
    token_file.chmod(0o640)
    monkeypatch.setenv("KAGGLE_API_TOKEN", str(token_file))
    assert kaggle_api.credentials_warning() == (
        f"other users of this computer can read your Kaggle credentials in {token_file}: run `chmod 600 {token_file}`"
    )


# A server that answers, but one byte at a time: every call has an overall deadline (1 + 2 × 1 s here)


@pytest.mark.parametrize(("trickled", "call", "action"), [
    ("GetSubmissionLimits", lambda tmp: kaggle_api.submission_limits(TITANIC),
     "read the submission limits of titanic"),
    ("ListSubmissions", lambda tmp: kaggle_api.list_submissions(TITANIC), "list your submissions to titanic"),
    ("CreateSubmission", lambda tmp: kaggle_api.submit(TITANIC, submission_file(tmp), "m"), "submit to titanic"),
    ("file", lambda tmp: kaggle_api.download("titanic", tmp), "download titanic"),
])
@pytest.mark.slow
def test_a_trickled_answer_is_bounded_by_an_overall_deadline(kaggle_server, fast, tmp_path, trickled, call, action):
    kaggle_server.trickle = {trickled}
    error, elapsed = call_within(PATIENCE, lambda: call(tmp_path))
    assert isinstance(error, KaggleError), error
    assert re.fullmatch(rf"Kaggle was still answering after \d+ s while trying to {action} \(too slowly to finish\): "
                        r"check your network and try again.*", str(error))
    assert elapsed < PATIENCE


def test_a_fast_trickle_still_downloads(kaggle_server, fast, tmp_path, monkeypatch):
    monkeypatch.setattr(kaggle_api, "MIN_RATE", 100)  # the fixture zip is ~60 kB: a slow line, not a stalled one
    kaggle_server.trickle, kaggle_server.trickle_gap = {"file"}, 0.0
    assert kaggle_api.download("titanic", tmp_path).read_bytes() == kaggle_server.zips["titanic"]


# Odd answers with HTTP 200


@pytest.mark.parametrize(("method", "reply", "call", "message"), [
    ("ListSubmissions", b"<html>busy</html>", lambda tmp: kaggle_api.list_submissions(TITANIC),
     "Kaggle answered with something that is not JSON while trying to list your submissions to titanic: try again "
     "later"),
    ("GetSubmissionLimits", b'{"numAllowedNow": null, "numToday": 2}',
     lambda tmp: kaggle_api.submission_limits(TITANIC),
     "Kaggle's answer about the submission limits of titanic holds no counts (None allowed now, 2 made today): try "
     "again later"),
    ("CreateSubmission", b'{"ref": "abc"}', lambda tmp: kaggle_api.submit(TITANIC, submission_file(tmp), "m"),
     "Kaggle accepted submission.csv but answered with the ref 'abc', not a submission number: see "
     "https://www.kaggle.com/competitions/titanic/submissions; do not upload it again"),
])
def test_an_odd_answer_is_one_line_naming_it(kaggle_server, tmp_path, method, reply, call, message):
    kaggle_server.replies = {method: reply}
    with pytest.raises(KaggleError) as err:
        call(tmp_path)
    assert str(err.value) == message


def test_only_a_username_is_named_not_replaced_by_the_bundled_copy(workspace, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "kc-test")
    with pytest.raises(KaggleError, match="^KAGGLE_USERNAME is set but KAGGLE_KEY is not: set both"):
        sources.fetch("titanic", Workspace(workspace))
    assert not (workspace / "competitions/titanic").exists()


def test_a_blank_token_file_counts_as_no_credentials(workspace):
    token = Path.home() / ".kaggle" / "access_token"
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text("  \n")
    try:
        assert not kaggle_api.credentials_configured()
        assert sources.fetch("titanic", Workspace(workspace)).source == "bundled"
    finally:
        token.unlink()
