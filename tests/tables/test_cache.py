"""The derived-table cache: what `kc convert` saves is what the CSVs give, and anything stale or damaged is not used."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, install

from pipeline.core import competitions
from pipeline.core.errors import DataError
from pipeline.core.workspace import Workspace
from pipeline.ingest.sources import fetch
from pipeline.tables import cache, frames

MATRICES = ("X", "X_raw", "X_test", "X_test_raw")


def fetched(root: Path, name: str) -> tuple[competitions.Competition, Workspace]:
    """A layout replica fetched into the workspace at `root`, and its (inferred or built-in) description."""
    ws = Workspace(root)
    if name == "house-prices":
        install(root, name)
    else:
        fetch(name, ws, FIXTURES / "layouts" / name)
    return competitions.get(name, root), ws


def same(a, b) -> None:
    """Two datasets hold the same rows, targets, ids, names and feature record."""
    for name in MATRICES:
        np.testing.assert_array_equal(np.asarray(a.matrices[name]() if callable(a.matrices[name]) else
                                                 a.matrices[name]), getattr(b, name))
    np.testing.assert_array_equal(a.y, b.y)
    assert a.y.dtype == b.y.dtype and a.test_ids.dtype == b.test_ids.dtype
    assert a.test_ids.tolist() == b.test_ids.tolist()
    assert (a.feature_names, a.features, a.fingerprint) == (b.feature_names, b.features, b.fingerprint)


@pytest.mark.parametrize("name", ["house-prices", "santander", "otto", "weather"])
def test_the_cache_holds_what_the_csvs_give(tmp_path, name):
    comp, ws = fetched(tmp_path, name)
    assert not frames.load(comp, ws).from_cache  # nothing converted yet
    converted = frames.convert(comp, ws)
    assert not converted.from_cache
    again = frames.load(comp, ws)
    assert again.from_cache and isinstance(again.X_raw, np.memmap)
    same(frames.load(comp, ws, cached=False), again)
    assert frames.convert(comp, ws).from_cache  # a second convert reuses it


def test_string_ids_come_back_as_text(tmp_path):
    comp, ws = fetched(tmp_path, "santander")
    frames.convert(comp, ws)
    ids = frames.load(comp, ws).test_ids
    assert ids.dtype == object and ids[0] == "test_0"


def test_models_may_write_into_mapped_rows_without_changing_the_cache(tmp_path):
    comp, ws = fetched(tmp_path, "house-prices")
    frames.convert(comp, ws)
    first = frames.load(comp, ws)
    before = first.X_raw[0, 0]
    first.X_raw[0, 0] = before + 1  # copy-on-write: this process's page only
    assert frames.load(comp, ws).X_raw[0, 0] == before


def test_changed_files_or_description_read_the_csvs_again(tmp_path):
    comp, ws = fetched(tmp_path, "house-prices")
    frames.convert(comp, ws)
    train = ws.data_dir(comp.slug) / comp.train_file
    lines = train.read_text().splitlines(keepends=True)
    train.write_text("".join(lines[:-1]))  # one row fewer
    changed = frames.load(comp, ws)
    assert not changed.from_cache and len(changed.y) == len(lines) - 2
    frames.convert(comp, ws)
    assert len(list((ws.cache_dir(comp.slug) / "tables").iterdir())) == 1  # the stale conversion is gone
    other = dataclasses.replace(comp, metric="rmse")  # same files, another description: another key
    assert cache.key(other, ws, changed.fingerprint) != cache.key(comp, ws, changed.fingerprint)
    assert not frames.load(other, ws).from_cache


def test_a_same_size_edit_with_its_old_modification_time_is_not_taken_for_the_converted_file(tmp_path):
    comp, ws = fetched(tmp_path, "house-prices")
    frames.convert(comp, ws)
    train = ws.data_dir(comp.slug) / comp.train_file
    before = train.stat()
    text = train.read_text()
    train.write_text(text.replace(",208500", ",802500", 1))  # a price's digits swapped: the same size
    os.utime(train, ns=(before.st_atime_ns, before.st_mtime_ns))
    edited = frames.load(comp, ws)
    assert edited.fingerprint == frames.load(comp, ws, cached=False).fingerprint  # size and mtime as before
    assert (not edited.from_cache and edited.y.max() == pytest.approx(np.log1p(802500))) or \
        not edited.from_cache


@pytest.mark.parametrize("damage", ["truncated", "meta", "shape", "labels", "targets", "builder"])
def test_a_damaged_cache_is_read_around(tmp_path, damage):
    comp, ws = fetched(tmp_path, "otto")
    frames.convert(comp, ws)  # (its mapped arrays are not touched again: truncating a mapped file kills a reader)
    good = frames.load(comp, ws, cached=False)
    folder = next((ws.cache_dir(comp.slug) / "tables").iterdir())
    if damage == "truncated":
        path = folder / "X_raw.npy"
        os.truncate(path, path.stat().st_size // 2)
    elif damage == "meta":
        (folder / "meta.json").write_text("{not json")
    elif damage == "shape":
        np.save(folder / "X_test.npy", np.zeros((3, 2), np.float32))
    elif damage == "labels":
        np.save(folder / "y.npy", np.full(len(good.y), len(comp.classes), np.int64))  # no such class
    elif damage == "targets":
        np.save(folder / "y.npy", np.zeros((len(good.y), 2), np.int64))  # two targets for a competition of one
    else:
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps({**meta, "record": {**meta["record"], "builder": "houses"}}))
    data = frames.load(comp, ws)
    assert not data.from_cache
    same(data, good)


def test_a_run_submits_from_the_cache_only_with_its_own_encoder(tmp_path):
    comp, ws = fetched(tmp_path, "house-prices")
    frames.convert(comp, ws)
    record = json.loads(json.dumps(frames.load(comp, ws, cached=False).features))  # as a run saves it
    test = frames.load_test(comp, ws, record)
    assert test is not None and test.from_cache and len(test.X) == 0
    np.testing.assert_array_equal(test.X_test_raw, frames.load(comp, ws, cached=False).X_test_raw)
    numeric = next(e for e in record["state"]["encodings"] if e["kind"] == "numeric")
    numeric["median"] += 1  # another fit's encoder: its own encoding of the test rows
    other = frames.load_test(comp, ws, record)
    assert other is not None and not other.from_cache


def test_leftovers_of_a_killed_convert_are_cleared(tmp_path):
    comp, ws = fetched(tmp_path, "santander")
    root = ws.cache_dir(comp.slug) / "tables"
    (root / f"{cache.STAGING}generic-killed").mkdir(parents=True)
    (root / f"{cache.STAGING}generic-killed" / "X.npy").write_bytes(b"half")
    frames.convert(comp, ws)
    assert [p.name for p in root.iterdir()] == [f"generic-{cache.key(comp, ws, frames.load(comp, ws).fingerprint)}"]


def test_convert_says_when_it_reused_the_cache_and_submissions_match_without_it(kc, workspace):
    install(workspace, "house-prices")
    slug = "house-prices-advanced-regression-techniques"
    lines = [kc("convert", *extra, ws=workspace).stdout.splitlines()[0] for extra in ((), (), ("--force",))]
    assert [line.split(" in ")[0] for line in lines] == [f"{slug}: converted", f"{slug}: loaded from cache",
                                                         f"{slug}: converted"]
    trained = kc("train", "--model", "sk-ridge", ws=workspace)
    assert trained.exit_code == 0, trained.output
    submissions = workspace / "submissions" / slug
    assert kc("submit", ws=workspace).exit_code == 0
    (first,) = submissions.glob("*.csv")
    mapped = first.read_bytes()
    first.unlink()
    for folder in (workspace / "competitions" / slug / "derived" / "tables").iterdir():
        for array in folder.glob("X*.npy"):
            array.write_bytes(b"")  # the cache unreadable: submit encodes test.csv with the run's encoder
    assert kc("submit", ws=workspace).exit_code == 0
    assert next(submissions.glob("*.csv")).read_bytes() == mapped


def test_only_kcs_own_folders_are_cleared_even_where_the_cache_folder_leads(tmp_path):
    comp, ws = fetched(tmp_path, "santander")
    elsewhere = tmp_path / "shared"
    for name in (".ssh", "generic-experiments", f"{cache.STAGING}generic-x"):
        (elsewhere / name).mkdir(parents=True)
        (elsewhere / name / "keep.txt").write_text("mine")
    ws.cache_dir(comp.slug).mkdir(parents=True)
    (ws.cache_dir(comp.slug) / "tables").symlink_to(elsewhere)
    frames.convert(comp, ws)
    assert frames.load(comp, ws).from_cache
    key = cache.key(comp, ws, frames.load(comp, ws).fingerprint)
    assert {p.name for p in elsewhere.iterdir()} == {".ssh", f"generic-{key}", "generic-experiments"}
    assert (elsewhere / ".ssh" / "keep.txt").exists() and (elsewhere / "generic-experiments" / "keep.txt").exists()


def test_a_cache_that_cannot_be_written_is_one_line_for_convert_and_no_matter_for_the_workers(tmp_path):
    comp, ws = fetched(tmp_path, "santander")
    ws.cache_dir(comp.slug).mkdir(parents=True)
    (ws.cache_dir(comp.slug) / "tables").write_text("a file where the folder goes")
    with pytest.raises(DataError, match=r"tables: cannot write kc's feature cache \(File exists\); free some space "
                                        r"or make it writable \(kc train and submit read the CSVs without it\)$"):
        frames.convert(comp, ws)
    data = frames.load(comp, ws)
    assert cache.kept(comp, ws, data) is data and len(data.X) == len(data.y)  # tune's workers read the CSVs


def test_ids_of_any_length_are_stored_by_their_own_length(tmp_path):
    comp, ws = fetched(tmp_path, "santander")
    test = ws.data_dir(comp.slug) / comp.test_file
    lines = test.read_text().splitlines()
    first = lines[1].split(",", 1)
    lines[1] = f"{first[0]}{'x' * 100_000},{first[1]}"  # one very long id
    test.write_text("\n".join(lines) + "\n")
    frames.convert(comp, ws)
    ids = frames.load(comp, ws).test_ids
    assert len(ids[0]) == len("test_0") + 100_000 and ids[1] == "test_1"
    stored = next((ws.cache_dir(comp.slug) / "tables").iterdir()) / "test_ids.parquet"
    assert stored.stat().st_size < 50_000  # not rows x the longest id
