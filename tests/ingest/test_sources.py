import json
import os
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import FIXTURES, non_dot

from pipeline.core import competitions
from pipeline.core.errors import DataError, KaggleError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.ingest import sources, unpack
from pipeline.ingest.csvfiles import check_headers

TITANIC = competitions.get("titanic")
DIGITS = competitions.get("digit-recognizer")


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def zip_of(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def fixture_bytes(slug: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (FIXTURES / slug).iterdir()}


@pytest.mark.parametrize("slug", ["titanic", "digit-recognizer"])
def test_fetch_from_zip_produces_the_three_csvs(workspace, fixture_zips, slug):
    comp = competitions.get(slug)
    result = sources.fetch(slug, Workspace(workspace), fixture_zips[slug])
    assert result.source == "file" and not result.skipped and not result.inferred
    assert result.competition is comp and result.files == comp.files
    folder = workspace / "competitions" / slug
    assert result.folder == folder
    assert files_in(folder) == sorted([*comp.files, sources.MARKER])
    check_headers(comp, folder)
    marker = json.loads((folder / sources.MARKER).read_text())
    assert marker["source"] == "file" and marker["origin"] == str(fixture_zips[slug]) and marker["sample"] is False


def test_fetch_from_folder(workspace):
    src = FIXTURES / "titanic"
    result = sources.fetch("titanic", Workspace(workspace), src)
    assert result.source == "file"
    assert (workspace / "competitions/titanic/train.csv").read_bytes() == (src / "train.csv").read_bytes()


def test_an_alias_fetches_into_the_registry_slug(workspace):
    house_prices = FIXTURES / "house-prices-advanced-regression-techniques"
    result = sources.fetch("house-prices", Workspace(workspace), house_prices)
    assert result.competition.slug == "house-prices-advanced-regression-techniques"
    assert non_dot(workspace / "competitions") == ["house-prices-advanced-regression-techniques"]
    assert (result.folder / "data_description.txt").is_file()


def test_second_fetch_is_a_no_op_unless_forced(workspace, fixture_zips):
    ws = Workspace(workspace)
    sources.fetch("titanic", ws, fixture_zips["titanic"])
    assert sources.fetch("titanic", ws, fixture_zips["titanic"]).skipped
    assert not sources.fetch("titanic", ws, fixture_zips["titanic"], force=True).skipped


def test_truncated_zip_leaves_nothing_behind(workspace, fixture_zips, tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(fixture_zips["digit-recognizer"].read_bytes()[:5000])
    with pytest.raises(DataError, match="corrupt or truncated zip"):
        sources.fetch("digit-recognizer", Workspace(workspace), broken)
    assert non_dot(workspace / "competitions") == []


def test_corrupt_zip_keeps_the_previous_good_copy(workspace, fixture_zips, tmp_path):
    ws = Workspace(workspace)
    sources.fetch("digit-recognizer", ws, fixture_zips["digit-recognizer"])
    folder = workspace / "competitions/digit-recognizer"
    before = {name: (folder / name).read_bytes() for name in (*DIGITS.files, sources.MARKER)}
    data = bytearray(fixture_zips["digit-recognizer"].read_bytes())
    data[200:260] = b"\x00" * 60  # damage the first entry's compressed bytes; the directory stays readable
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match="damaged.zip: corrupt or truncated zip"):
        sources.fetch("digit-recognizer", ws, damaged, force=True)
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert not [p for p in folder.iterdir() if p.name.startswith(sources.STAGING)]


def test_a_killed_fetch_leaves_nothing_counted_and_its_staging_is_cleaned(workspace, fixture_zips, monkeypatch):
    ws = Workspace(workspace)
    sources.fetch("titanic", ws, fixture_zips["titanic"])
    folder = workspace / "competitions/titanic"
    real = os.replace
    moved = []

    def killed_after_one(src, dst):
        if moved:
            raise KeyboardInterrupt  # the user pressed Ctrl-C half-way through installing
        moved.append(dst)
        real(src, dst)

    monkeypatch.setattr(sources.os, "replace", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        sources.fetch("titanic", ws, FIXTURES / "titanic", force=True)
    monkeypatch.setattr(sources.os, "replace", real)
    assert sources.read_marker(folder) is None  # a mixed set of files never counts as fetched
    with pytest.raises(DataError, match="titanic is not fetched yet"):
        sources.require_fetched(TITANIC, ws)
    (folder / f"{sources.STAGING}left-by-a-killed-kc").mkdir()
    again = sources.fetch("titanic", ws, fixture_zips["titanic"])
    assert not again.skipped
    assert files_in(folder) == sorted([*TITANIC.files, sources.MARKER])


def test_zip_entries_escaping_the_folder_are_refused(workspace, tmp_path):
    evil = zip_of(tmp_path / "evil.zip", {"../../train.csv": b"label\n"})
    with pytest.raises(DataError, match=r"refusing unsafe zip entry '\.\./\.\./train\.csv'"):
        sources.fetch("digit-recognizer", Workspace(workspace), evil)
    assert not (tmp_path / "train.csv").exists()


def test_top_level_entries_are_preferred_and_same_depth_duplicates_refused(workspace, tmp_path):
    files = fixture_bytes("titanic")
    nested = {f"old/{name}": b"stale" for name in files}
    ws = Workspace(workspace)
    sources.fetch("titanic", ws, zip_of(tmp_path / "both.zip", {**nested, **files}))
    assert (workspace / "competitions/titanic/train.csv").read_bytes() == files["train.csv"]
    twice = zip_of(tmp_path / "twice.zip", {**{f"a/{n}": d for n, d in files.items()},
                                            **{f"b/{n}": d for n, d in files.items()}})
    with pytest.raises(DataError) as err:
        sources.fetch("titanic", ws, twice, force=True)
    assert str(err.value) == f"{twice}: two entries named train.csv (a/train.csv, b/train.csv); keep one and try again"
    same = tmp_path / "same.zip"  # one name written twice at the same path: zipfile warns and keeps both
    with zipfile.ZipFile(same, "w") as zf:
        for name, data in [*files.items(), ("train.csv", b"x")]:
            zf.writestr(name, data)
    with pytest.raises(DataError) as err:  # it raised an unexpected TypeError comparing the two entries
        sources.fetch("other", ws, same)
    assert str(err.value) == f"{same}: two entries named train.csv (train.csv, train.csv); keep one and try again"


def test_a_zip_bomb_is_refused_before_unpacking(workspace, tmp_path, monkeypatch):
    # deflate packs at most ~1000:1, so a real bomb nests zips or lies; a lower limit shows the check at work
    monkeypatch.setattr(unpack, "MAX_RATIO", 100)
    bomb = zip_of(tmp_path / "bomb.zip", {**fixture_bytes("titanic"), "train.csv": b"0" * (8 << 20)})
    with pytest.raises(DataError) as err:
        sources.fetch("titanic", Workspace(workspace), bomb)
    assert str(err.value).startswith(f"{bomb}: the zip claims to unpack to 0.0 GB from 0.0 MB; refusing it as a "
                                     "likely zip bomb")
    monkeypatch.setattr(unpack, "MAX_RATIO", 1000)
    monkeypatch.setattr(unpack, "MAX_UNPACKED", 1 << 20)
    with pytest.raises(DataError, match="refusing it as a likely zip bomb"):
        sources.fetch("titanic", Workspace(workspace), bomb)
    assert non_dot(workspace / "competitions") == []


def test_a_header_that_is_no_csv_header_is_one_error(workspace, tmp_path):
    files = fixture_bytes("titanic")
    odd = zip_of(tmp_path / "odd.zip", {**files, "train.csv": b"x" * 200_000 + b"\n1\n"})
    with pytest.raises(DataError) as err:
        sources.fetch("titanic", Workspace(workspace), odd)
    assert str(err.value) == "train.csv: the header line cannot be read (field larger than field limit (131072))"
    assert non_dot(workspace / "competitions") == []


def test_a_full_disk_is_refused_before_unpacking(workspace, fixture_zips, monkeypatch):
    monkeypatch.setattr(sources.shutil, "disk_usage", lambda _: SimpleNamespace(free=1000))
    with pytest.raises(DataError, match=r"titanic.zip: unpacking needs 1\.08 MB \(with a margin\) but only 0\.00 MB "
                                        r"is free in .*competitions/titanic \(no space left on device\)"):
        sources.fetch("titanic", Workspace(workspace), fixture_zips["titanic"])
    with pytest.raises(DataError, match=r"copying needs 1\.08 MB \(with a margin\) but only 0\.00 MB is free"):
        sources.fetch("titanic", Workspace(workspace), FIXTURES / "titanic")


def test_a_small_disk_with_room_for_the_files_is_enough(workspace, fixture_zips, monkeypatch):
    monkeypatch.setattr(sources.shutil, "disk_usage", lambda _: SimpleNamespace(free=5 << 20))  # a 5 MB tmpfs
    assert sources.fetch("titanic", Workspace(workspace), fixture_zips["titanic"]).files == TITANIC.files


def test_a_disk_filling_up_during_a_folder_fetch_names_the_destination(workspace, monkeypatch):
    import errno

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(sources.shutil, "copyfile", full)
    with pytest.raises(DataError) as err:
        sources.fetch("titanic", Workspace(workspace), FIXTURES / "titanic")
    assert str(err.value) == (f"{workspace}/competitions/titanic: no space left on device while writing the files; "
                              "free some space and try again")


def other_files(tmp_path: Path) -> dict[str, bytes]:
    """The files of a competition kc does not know (Titanic's, with the sample named as Kaggle usually does)."""
    files = fixture_bytes("titanic")
    files["sample_submission.csv"] = files.pop("gender_submission.csv")
    return files


def test_a_zip_holding_kcs_own_names_fetches_and_fetches_again(workspace, tmp_path):
    ws = Workspace(workspace)
    stale = json.dumps({"slug": "other", "title": "planted"}).encode()
    odd = zip_of(tmp_path / "odd.zip", {**other_files(tmp_path), "competition.json": stale, "runs": b"x",
                                        "derived": b"y"})
    first = sources.fetch("other", ws, odd)
    folder = workspace / "competitions/other"
    assert "competition.json" not in first.competition.extra_files
    assert not (folder / "runs").exists() and not (folder / "derived").exists()
    again = sources.fetch("other", ws, odd, force=True)
    assert not again.skipped and sources.read_marker(folder) is not None
    assert competitions.get("other", workspace).title == "Other"
    (folder / "runs").mkdir()
    assert not sources.fetch("other", ws, folder, force=True).skipped  # its own folder, runs/ and all


def test_wrong_header_is_named(workspace, tmp_path):
    from pipeline.tables.titanic import TRAIN_COLUMNS

    src = tmp_path / "src"
    src.mkdir()
    (src / "train.csv").write_text(",".join(TRAIN_COLUMNS) + "\n")
    (src / "gender_submission.csv").write_text("PassengerId,Survived\n")
    (src / "test.csv").write_text("PassengerId,Class\n1,3\n")
    with pytest.raises(DataError) as err:
        sources.fetch("titanic", Workspace(workspace), src)
    assert str(err.value) == ("test.csv: column 'Pclass' is missing; test must have train's columns without the "
                              "target (or list it in dropped_columns in competition.json)")
    (src / "test.csv").write_text(",".join(c for c in TRAIN_COLUMNS if c != "Survived") + ",Deck\n")
    with pytest.raises(DataError) as err:
        sources.fetch("titanic", Workspace(workspace), src)
    assert str(err.value) == ("test.csv: column 'Deck' is not in train; test must have train's columns without the "
                              "target: remove it from test.csv (a column train lacks teaches nothing)")
    (src / "test.csv").write_text(",".join(c for c in TRAIN_COLUMNS if c != "Survived") + "\n")
    (src / "gender_submission.csv").write_text("PassengerId,Survived,Name\n")
    with pytest.raises(DataError) as err:
        sources.fetch("titanic", Workspace(workspace), src)
    assert str(err.value) == "gender_submission.csv: header is PassengerId,Survived,Name, expected PassengerId,Survived"
    assert non_dot(workspace / "competitions") == []


def test_zip_of_another_competition_is_refused(workspace, fixture_zips):
    with pytest.raises(DataError) as err:
        sources.fetch("titanic", Workspace(workspace), fixture_zips["digit-recognizer"])
    other = fixture_zips["digit-recognizer"]
    assert str(err.value) == f"{other}: no gender_submission.csv in the zip; is it titanic's data?"


def test_metric_of_a_built_in_competition_cannot_change(workspace, fixture_zips):
    with pytest.raises(UsageError) as err:
        sources.fetch("titanic", Workspace(workspace), fixture_zips["titanic"], metric="f1")
    assert str(err.value) == "--metric: titanic is built in and scored by accuracy"


def test_without_credentials_the_bundled_copy_is_used(workspace):
    result = sources.fetch("digit-recognizer", Workspace(workspace))
    assert result.source == "bundled" and result.sample
    marker = json.loads((workspace / "competitions/digit-recognizer" / sources.MARKER).read_text())
    assert marker["sample"] is True
    titanic = sources.fetch("titanic", Workspace(workspace))
    assert titanic.source == "bundled" and not titanic.sample
    assert len((workspace / "competitions/titanic/train.csv").read_text().splitlines()) == 892
    # Kaggle's own two-column sample, not a spreadsheet export of it
    sample = workspace / "competitions/titanic/gender_submission.csv"
    assert sample.stat().st_size == 3258
    assert sample.read_text().splitlines()[:2] == ["PassengerId,Survived", "892,0"]


def test_without_credentials_force_keeps_real_data(workspace):
    ws = Workspace(workspace)
    sources.fetch("titanic", ws, FIXTURES / "titanic")
    before = (workspace / "competitions/titanic/train.csv").read_bytes()
    with pytest.raises(KaggleError) as err:
        sources.fetch("titanic", ws, force=True)
    bundled = sources.bundled_zip("titanic")
    assert str(err.value) == ("no Kaggle credentials, and kc will not replace the file copy of titanic with its "
                              f"bundled sample; to do so anyway: `kc fetch titanic --from {bundled} --force`")
    assert (workspace / "competitions/titanic/train.csv").read_bytes() == before


def test_without_credentials_or_a_bundled_copy(workspace):
    with pytest.raises(KaggleError) as err:
        sources.fetch("house-prices", Workspace(workspace))
    slug = "house-prices-advanced-regression-techniques"
    assert str(err.value) == (f"no Kaggle credentials and kc bundles no copy of {slug}: download the data from "
                              f"https://www.kaggle.com/competitions/{slug}/data and run `kc fetch {slug} --from "
                              "FILE.zip`, or save an API token from https://www.kaggle.com/settings as "
                              "~/.kaggle/kaggle.json")


def test_kaggle_notebook_input_is_used(workspace, monkeypatch, tmp_path):
    notebook_input = tmp_path / "kaggle-input"
    shutil.copytree(FIXTURES / "titanic", notebook_input / "titanic")
    monkeypatch.setattr(sources, "KAGGLE_INPUT", notebook_input)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert sources.fetch("titanic", Workspace(workspace)).source == "notebook"


@pytest.mark.parametrize("slug", ["titanic", "digit-recognizer"])
def test_real_client_downloads_from_the_fake_server(workspace, kaggle_server, slug):
    result = sources.fetch(slug, Workspace(workspace))
    assert result.source == "kaggle" and result.origin == "Kaggle API"
    assert "DownloadDataFiles" in kaggle_server.calls
    fixture = FIXTURES / slug / "train.csv"
    assert (workspace / "competitions" / slug / "train.csv").read_bytes() == fixture.read_bytes()


def test_bundled_copy_is_replaced_once_credentials_exist(workspace, kaggle_server, monkeypatch):
    ws = Workspace(workspace)
    with monkeypatch.context() as m:
        m.delenv("KAGGLE_USERNAME")
        m.delenv("KAGGLE_KEY")  # one without the other is a credential problem, named
        assert sources.fetch("digit-recognizer", ws).source == "bundled"
    assert sources.fetch("digit-recognizer", ws).source == "kaggle"


def test_a_failed_download_keeps_the_copy_there_is(workspace, kaggle_server):
    ws = Workspace(workspace)
    sources.fetch("titanic", ws, FIXTURES / "titanic")
    kaggle_server.fail["DownloadDataFiles"] = 429
    with pytest.raises(KaggleError, match=r"^Kaggle is rate-limiting you \(429\).*\(the file copy already there is "
                                          r"kept\)$"):
        sources.fetch("titanic", ws, force=True)
    assert sources.read_marker(workspace / "competitions/titanic")["source"] == "file"


def test_a_cut_download_is_resumed_by_the_client(workspace, kaggle_server):
    kaggle_server.cut_downloads = 1
    result = sources.fetch("titanic", Workspace(workspace), retries=1)
    assert result.source == "kaggle"
    assert (workspace / "competitions/titanic/gender_submission.csv").exists()


def test_a_download_cut_every_time_fails_cleanly(workspace, kaggle_server, monkeypatch):
    kaggle_server.cut_downloads = 10
    monkeypatch.setattr("time.sleep", lambda s: None)  # the client backs off between retries
    with pytest.raises(KaggleError, match="while trying to download titanic|cannot reach Kaggle"):
        sources.fetch("titanic", Workspace(workspace), retries=1)
    assert non_dot(workspace / "competitions") == []


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
        sources.fetch("titanic", Workspace(workspace))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
    assert non_dot(workspace / "competitions") == []


def test_wrong_key_is_a_401(workspace, kaggle_server):
    kaggle_server.key = "another-key"
    with pytest.raises(KaggleError, match=r"rejected your credentials \(401\)"):
        sources.fetch("titanic", Workspace(workspace))


def test_network_failure_is_one_line(workspace, kaggle_server, monkeypatch):
    from kagglesdk.kaggle_env import KaggleEnv, _env_to_endpoint

    monkeypatch.setitem(_env_to_endpoint, KaggleEnv.LOCAL, "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(KaggleError, match=r"cannot reach Kaggle to download titanic \(ConnectionError\)"):
        sources.fetch("titanic", Workspace(workspace))


def test_a_fetched_copy_kc_does_not_bundle_is_already_fetched_without_credentials(workspace):
    ws = Workspace(workspace)
    sources.fetch("house-prices", ws, FIXTURES / "house-prices-advanced-regression-techniques")
    again = sources.fetch("house-prices", ws)
    assert again.skipped and again.source == "file"


def test_a_header_over_a_megabyte_is_named(workspace, tmp_path):
    files = fixture_bytes("titanic")
    wide = b"PassengerId,Survived," + b",".join(b"col%d" % i for i in range(200_000)) + b"\n1,0\n"
    odd = zip_of(tmp_path / "wide.zip", {**files, "train.csv": wide})
    with pytest.raises(DataError) as err:
        sources.fetch("titanic", Workspace(workspace), odd)
    assert str(err.value) == ("train.csv: the header line is longer than 1 MB; is this a CSV with its column names on "
                              "the first line?")


def test_an_empty_test_csv_is_refused_at_fetch(workspace, tmp_path):
    files = fixture_bytes("titanic")
    empty = zip_of(tmp_path / "empty.zip", {**files, "test.csv": files["test.csv"].splitlines(keepends=True)[0]})
    with pytest.raises(DataError) as err:
        sources.fetch("titanic", Workspace(workspace), empty)
    assert str(err.value) == f"{empty}: test.csv has a header but no rows; is it the competition's data?"


def test_a_line_break_in_a_quoted_header_cell_is_named(workspace, tmp_path):
    files = fixture_bytes("titanic")
    lines = files["train.csv"].split(b"\n", 1)
    broken = zip_of(tmp_path / "broken.zip", {**files, "train.csv": b'"Passen\nger' + lines[0][6:] + b"\n" + lines[1]})
    with pytest.raises(DataError) as err:
        sources.fetch("titanic", Workspace(workspace), broken)
    assert str(err.value) == ("train.csv: a quoted header cell holds a line break (or a quote is unclosed); put the "
                              "column names on the first line")


def zipped(name: str, data: bytes) -> bytes:
    """One file zipped on its own, as Kaggle ships train.csv.zip inside a competition's download."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return buffer.getvalue()


def test_tab_separated_tables_zipped_again_or_not_are_read_as_their_csvs(workspace, tmp_path):
    import pandas as pd

    ws, files = Workspace(workspace), other_files(tmp_path)
    tables = {n: pd.read_csv(FIXTURES / "titanic" / n, dtype=str, keep_default_na=False) for n in ("train.csv",
                                                                                                    "test.csv")}
    tables["train.csv"].loc[0, "Name"] = '"Owen Harris'  # a quote is part of a TSV cell: no row merges with the next
    tables["train.csv"].loc[1, "Name"] = 'Cumings, Mrs. "Florence" Thayer'

    def tsv_of(table: pd.DataFrame) -> bytes:  # as a plain TSV writer writes it: cells joined by tabs, no quoting
        return "".join("\t".join(row) + "\r\n" for row in [list(table.columns), *table.to_numpy().tolist()]).encode()

    tsv = {n.replace(".csv", ".tsv"): tsv_of(t) for n, t in tables.items()}
    nested = zip_of(tmp_path / "tsv.zip", {"sample_submission.csv": files["sample_submission.csv"],
                                           **{f"{n}.zip": zipped(n, data) for n, data in tsv.items()}})
    comp = sources.fetch("other", ws, nested).competition  # Movie Review Sentiment's layout: train.tsv.zip
    folder = workspace / "competitions/other"
    assert files_in(folder) == [".kc-fetch.json", "competition.json", "sample_submission.csv", "test.csv", "train.csv"]
    for name, table in tables.items():  # cell for cell
        assert pd.read_csv(folder / name, dtype=str, keep_default_na=False).equals(table)
    assert (comp.target_column, comp.id_column, comp.task) == ("Survived", "PassengerId", "binary")
    src = tmp_path / "src"
    src.mkdir()
    for name, data in {**tsv, "sample_submission.csv": files["sample_submission.csv"]}.items():
        (src / name).write_bytes(data)
    sources.fetch("other", ws, src, force=True)  # train.tsv and test.tsv in a folder
    assert pd.read_csv(folder / "test.csv", dtype=str, keep_default_na=False).equals(tables["test.csv"])
    (src / "test.csv").write_bytes(files["test.csv"])
    with pytest.raises(DataError, match=r"^test.tsv: test.csv is also beside it; keep one copy$"):
        sources.fetch("other", ws, src, force=True)
    (src / "test.csv").unlink()
    lines = tsv["test.tsv"].split(b"\r\n")
    for broken, error in ((lines[0] + b"\tFare", "column 'Fare' appears twice in the header"),
                          (None, "row 2 has 12 tab-separated cells and the header 11; is a tab missing, or one too "
                                 "many?")):
        changed = [broken, *lines[1:]] if broken else [lines[0], lines[1], lines[2] + b"\t", *lines[3:]]
        (src / "test.tsv").write_bytes(b"\r\n".join(changed))  # pandas renamed Fare.1, or moved every later cell
        with pytest.raises(DataError) as err:
            sources.fetch("other", ws, src, force=True)
        assert str(err.value) == f"test.tsv: {error}"


def test_a_zip_without_train_csv_says_what_it_holds(workspace, tmp_path):
    odd = zip_of(tmp_path / "odd.zip", {f"part{i}.txt": b"x" for i in range(7)})
    with pytest.raises(DataError) as err:
        sources.fetch("other", Workspace(workspace), odd)
    assert str(err.value) == (f"{odd}: no train.csv in the zip (found: part0.txt, part1.txt, part2.txt, part3.txt, "
                              "part4.txt and 2 more); is it a Kaggle competition's data?")


def test_csvs_zipped_again_inside_the_zip_or_folder_are_unpacked(workspace, tmp_path):
    ws, files = Workspace(workspace), other_files(tmp_path)
    nested = zip_of(tmp_path / "nested.zip", {f"{n}.zip": zipped(n, data) for n, data in files.items()})
    sources.fetch("other", ws, nested)
    folder = workspace / "competitions/other"
    assert files_in(folder) == sorted([*files, ".kc-fetch.json", "competition.json"])
    assert (folder / "train.csv").read_bytes() == files["train.csv"]
    src = tmp_path / "src"
    src.mkdir()
    for n, data in files.items():
        (src / (f"{n}.zip" if n == "test.csv" else n)).write_bytes(zipped(n, data) if n == "test.csv" else data)
    sources.fetch("other", ws, src, force=True)
    assert (folder / "test.csv").read_bytes() == files["test.csv"] and not (folder / "test.csv.zip").exists()
    (src / "test.csv.zip").write_bytes(zip_of(tmp_path / "inner.zip", {"a.csv": b"x", "b.csv": b"y"}).read_bytes())
    with pytest.raises(DataError, match=r"^test.csv.zip: expected one CSV inside, found 2; unzip it yourself, keep "
                                        r"the one that is test.csv and remove test.csv.zip$"):
        sources.fetch("other", ws, src, force=True)
    assert (folder / "test.csv").read_bytes() == files["test.csv"]  # the earlier fetch is kept
    locked = bytearray(zipped("test.csv", files["test.csv"]))  # marked password-protected (zipfile writes no such)
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local header, central directory
        locked[locked.index(signature) + flags_at] |= 0x1
    (src / "test.csv.zip").write_bytes(locked)
    with pytest.raises(DataError, match=r"^test.csv.zip: test.csv is password-protected; unzip it yourself"):
        sources.fetch("other", ws, src, force=True)
    (src / "test.csv").write_bytes(files["test.csv"])  # unzipped by hand, the archive left beside it
    with pytest.raises(DataError, match=r"^test.csv.zip: test.csv is also beside it; keep one copy$"):
        sources.fetch("other", ws, src, force=True)  # said before the password, so the advice leads somewhere
    (src / "test.csv").unlink()
    (src / "test.csv.zip").write_bytes(zip_of(tmp_path / "mac.zip", {"test.csv": files["test.csv"], "._test.csv": b"\0",
                                                                      "__MACOSX/._test.csv": b"\0"}).read_bytes())
    sources.fetch("other", ws, src, force=True)  # macOS resource forks are no second CSV, as in the outer zip
    (src / "test.csv.zip").write_bytes(zipped("test.csv", files["test.csv"]))
    (src / "test.csv").write_bytes(files["test.csv"])
    (src / "test.csv").unlink()
    (src / "test.csv.zip").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match=r"^test.csv.zip: corrupt or truncated .*; download it"):
        sources.fetch("other", ws, src, force=True)
    assert (folder / "test.csv").read_bytes() == files["test.csv"]
    (src / "test.csv.zip").write_bytes(zipped("test.csv", files["test.csv"]))
    (src / "notes.csv.zip").write_bytes(b"PK\x03\x04 not a zip")  # an extra kc does not read: no reason to stop
    (src / "more.csv.zip").write_bytes(zip_of(tmp_path / "two.zip", {"a.csv": b"x", "b.csv": b"y"}).read_bytes())
    sources.fetch("other", ws, src, force=True)
    assert {p.name for p in folder.glob("*.csv*")} == {"train.csv", "test.csv", "sample_submission.csv",
                                                       "notes.csv.zip", "more.csv.zip"}


def test_a_tables_test_columns_may_come_in_any_order(workspace, tmp_path):
    from pipeline.core import dataset

    ws, files = Workspace(workspace), other_files(tmp_path)
    sources.fetch("other", ws, zip_of(tmp_path / "a.zip", files))
    header, *rows = [line.split(",") for line in files["test.csv"].decode().splitlines()]
    assert header[:2] == ["PassengerId", "Pclass"]  # Name holds commas in quotes, so only these two move
    files["test.csv"] = "".join(",".join([r[1], r[0], *r[2:]]) + "\n" for r in [header, *rows]).encode()
    sources.fetch("swapped", ws, zip_of(tmp_path / "b.zip", files))  # refused before: "in another order"
    a, b = (dataset.load_dataset(competitions.get(slug, workspace), ws) for slug in ("other", "swapped"))
    assert np.array_equal(a.test_inputs(True), b.test_inputs(True), equal_nan=True)
    assert np.array_equal(a.test_ids, b.test_ids)


def test_a_semicolon_train_whose_cells_hold_commas_is_told_by_its_separator(tmp_path):
    folder = tmp_path / "titanic"
    shutil.copytree(FIXTURES / "titanic", folder)
    # commas read this header and row alike ('PassengerId;Survived;Pclass;Name', 'Sex'): the sample's id tells ';'
    (folder / "train.csv").write_text('PassengerId;Survived;Pclass;Name,Sex\n1;0;3;Braund,male\n')
    with pytest.raises(DataError) as err:
        check_headers(TITANIC, folder)
    assert str(err.value) == ("train.csv: its columns are separated by ';', not commas; kc reads CSVs as Kaggle "
                              "ships them: save it with commas")


def test_from_one_csv_says_it_takes_the_zip_or_its_folder(workspace, tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_bytes(fixture_bytes("titanic")["train.csv"])
    with pytest.raises(DataError) as err:  # it said 'corrupt or truncated zip; download it again'
        sources.fetch("other", Workspace(workspace), csv)
    assert str(err.value) == (f"{csv}: is one file, not a zip; --from takes the competition's zip as Kaggle serves it, "
                              f"or the folder holding its files ({tmp_path})")


def test_a_damaged_description_is_written_anew_by_force_and_named_otherwise(workspace, tmp_path):
    ws, files = Workspace(workspace), other_files(tmp_path)
    source = zip_of(tmp_path / "other.zip", files)
    sources.fetch("other", ws, source)
    path = workspace / "competitions/other/competition.json"
    path.write_text('{"broken":')
    with pytest.raises(DataError) as err:
        sources.fetch("other", ws, source)
    assert str(err.value) == (f"{path}: not valid JSON (Expecting value at line 1); fix it, or fetch again with "
                              "--force (and --from, and --metric if you gave one) to describe other anew")
    assert sources.fetch("other", ws, source, force=True).competition.target_column == "Survived"  # it kept failing
    assert json.loads(path.read_text())["slug"] == "other"


def test_a_tab_separated_cell_longer_than_the_csv_modules_limit_is_kept(workspace, tmp_path):
    import pandas as pd

    files = other_files(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("train.csv", "test.csv"):
        table = pd.read_csv(FIXTURES / "titanic" / name, dtype=str, keep_default_na=False)
        if name == "train.csv":
            table.loc[0, "Name"] = "x" * 200_000  # free text runs long; the csv module stopped at 131,072
        text = "".join("\t".join(row) + "\n" for row in [list(table.columns), *table.to_numpy().tolist()])
        (src / name.replace(".csv", ".tsv")).write_text(text)
    (src / "sample_submission.csv").write_bytes(files["sample_submission.csv"])
    import csv

    limit = csv.field_size_limit()
    sources.fetch("other", Workspace(workspace), src)  # it raised an unexpected csv.Error
    assert csv.field_size_limit() == limit  # the process's limit: raised for good, a 64 MB digit cell went to int()
    train = pd.read_csv(workspace / "competitions/other/train.csv", dtype=str, keep_default_na=False)
    assert train.loc[0, "Name"] == "x" * 200_000
