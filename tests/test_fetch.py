import json
import zipfile
from pathlib import Path

import pytest

from pipeline import competitions, fetch
from pipeline.errors import DataError, KaggleError
from pipeline.workspace import Workspace

TITANIC = competitions.get("titanic")
DIGITS = competitions.get("digit-recognizer")


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("slug", ["titanic", "digit-recognizer"])
def test_fetch_from_zip_produces_the_three_csvs(workspace, fixture_zips, slug):
    comp = competitions.get(slug)
    result = fetch.fetch(comp, Workspace(workspace), fixture_zips[slug])
    assert result.source == "file" and not result.skipped
    folder = workspace / "competitions" / slug
    assert files_in(folder) == sorted([f.name for f in comp.files] + [fetch.MARKER])
    for spec in comp.files:
        fetch.check_header(folder / spec.name, spec)


def test_fetch_from_folder(workspace):
    src = Path(__file__).parent / "fixtures" / "titanic"
    result = fetch.fetch(TITANIC, Workspace(workspace), src)
    assert result.source == "file"
    assert (workspace / "competitions/titanic/train.csv").read_bytes() == (src / "train.csv").read_bytes()


def test_second_fetch_is_a_no_op_unless_forced(workspace, fixture_zips):
    ws = Workspace(workspace)
    fetch.fetch(TITANIC, ws, fixture_zips["titanic"])
    assert fetch.fetch(TITANIC, ws, fixture_zips["titanic"]).skipped
    assert not fetch.fetch(TITANIC, ws, fixture_zips["titanic"], force=True).skipped


def test_truncated_zip_leaves_nothing_behind(workspace, fixture_zips, tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(fixture_zips["digit-recognizer"].read_bytes()[:5000])
    with pytest.raises(DataError, match="corrupt or truncated zip"):
        fetch.fetch(DIGITS, Workspace(workspace), broken)
    assert files_in(workspace / "competitions") == []


def test_corrupt_zip_keeps_the_previous_good_copy(workspace, fixture_zips, tmp_path):
    ws = Workspace(workspace)
    fetch.fetch(DIGITS, ws, fixture_zips["digit-recognizer"])
    folder = workspace / "competitions/digit-recognizer"
    before = {name: (folder / name).read_bytes() for name in ("train.csv", "test.csv")}
    data = bytearray(fixture_zips["digit-recognizer"].read_bytes())
    data[200:260] = b"\x00" * 60  # damage the first entry's compressed bytes; the directory stays readable
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match="damaged.zip: corrupt or truncated zip"):
        fetch.fetch(DIGITS, ws, damaged, force=True)
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert not [p for p in folder.iterdir() if p.name.startswith(".fetch-")]


def test_zip_entries_escaping_the_folder_are_refused(workspace, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../train.csv", "label\n")
    with pytest.raises(DataError, match=r"refusing unsafe zip entry '\.\./\.\./train\.csv'"):
        fetch.fetch(DIGITS, Workspace(workspace), evil)
    assert not (tmp_path / "train.csv").exists()


def test_wrong_header_is_named(workspace, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for spec in TITANIC.files:
        (src / spec.name).write_text(",".join(spec.columns) + "\n")
    (src / "test.csv").write_text("PassengerId,Class\n1,3\n")
    with pytest.raises(DataError, match="test.csv: column 2 of the header is 'Class', expected 'Pclass'"):
        fetch.fetch(TITANIC, Workspace(workspace), src)


def test_zip_of_another_competition_is_refused(workspace, fixture_zips):
    with pytest.raises(DataError, match="no gender_submission.csv in the zip"):
        fetch.fetch(TITANIC, Workspace(workspace), fixture_zips["digit-recognizer"])


def test_without_credentials_the_bundled_copy_is_used(workspace):
    result = fetch.fetch(DIGITS, Workspace(workspace))
    assert result.source == "bundled" and result.sample
    marker = json.loads((workspace / "competitions/digit-recognizer" / fetch.MARKER).read_text())
    assert marker["sample"] is True
    titanic = fetch.fetch(TITANIC, Workspace(workspace))
    assert titanic.source == "bundled" and not titanic.sample
    assert len((workspace / "competitions/titanic/train.csv").read_text().splitlines()) == 892


def test_kaggle_notebook_input_is_used(workspace, monkeypatch, tmp_path):
    notebook_input = tmp_path / "kaggle-input"
    (notebook_input / "titanic").mkdir(parents=True)
    for csv in (Path(__file__).parent / "fixtures/titanic").glob("*.csv"):
        (notebook_input / "titanic" / csv.name).write_bytes(csv.read_bytes())
    monkeypatch.setattr(fetch, "KAGGLE_INPUT", notebook_input)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert fetch.fetch(TITANIC, Workspace(workspace)).source == "notebook"


@pytest.mark.parametrize("slug", ["titanic", "digit-recognizer"])
def test_real_client_downloads_from_the_fake_server(workspace, kaggle_server, slug):
    comp = competitions.get(slug)
    result = fetch.fetch(comp, Workspace(workspace))
    assert result.source == "kaggle"
    assert "DownloadDataFiles" in kaggle_server.calls
    fixture = Path(__file__).parent / "fixtures" / slug / "train.csv"
    assert (workspace / "competitions" / slug / "train.csv").read_bytes() == fixture.read_bytes()


def test_bundled_copy_is_replaced_once_credentials_exist(workspace, kaggle_server, monkeypatch):
    ws = Workspace(workspace)
    with monkeypatch.context() as m:
        m.delenv("KAGGLE_USERNAME")
        assert fetch.fetch(DIGITS, ws).source == "bundled"
    assert fetch.fetch(DIGITS, ws).source == "kaggle"


def test_a_cut_download_is_resumed_by_the_client(workspace, kaggle_server):
    kaggle_server.cut_downloads = 1
    result = fetch.fetch(TITANIC, Workspace(workspace), retries=1)
    assert result.source == "kaggle"
    assert (workspace / "competitions/titanic/gender_submission.csv").exists()


def test_a_download_cut_every_time_fails_cleanly(workspace, kaggle_server, monkeypatch):
    kaggle_server.cut_downloads = 10
    monkeypatch.setattr("time.sleep", lambda s: None)  # the client backs off between retries
    with pytest.raises(KaggleError, match="while trying to download titanic|cannot reach Kaggle"):
        fetch.fetch(TITANIC, Workspace(workspace), retries=1)
    assert files_in(workspace / "competitions") == []


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "Kaggle rejected your credentials (401) while trying to download titanic: create a new API token"),
        (403, "Kaggle refused to download titanic (403): accept the rules at "
              "https://www.kaggle.com/competitions/titanic/rules, then run the command again"),
        (404, "Kaggle has no competition 'titanic' (404) to download titanic: check the slug"),
        (429, "Kaggle is rate-limiting you (429) while trying to download titanic: wait a few minutes"),
    ],
)
def test_server_errors_become_one_line_messages(workspace, kaggle_server, status, message):
    kaggle_server.fail["DownloadDataFiles"] = status
    with pytest.raises(KaggleError) as err:
        fetch.fetch(TITANIC, Workspace(workspace))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
    assert files_in(workspace / "competitions") == []


def test_wrong_key_is_a_401(workspace, kaggle_server):
    kaggle_server.key = "another-key"
    with pytest.raises(KaggleError, match=r"rejected your credentials \(401\)"):
        fetch.fetch(TITANIC, Workspace(workspace))


def test_network_failure_is_one_line(workspace, kaggle_server, monkeypatch):
    from kagglesdk.kaggle_env import KaggleEnv, _env_to_endpoint

    monkeypatch.setitem(_env_to_endpoint, KaggleEnv.LOCAL, "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(KaggleError, match=r"cannot reach Kaggle to download titanic \(ConnectionError\)"):
        fetch.fetch(TITANIC, Workspace(workspace))
