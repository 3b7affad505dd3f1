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
    assert cache.key(other, changed.fingerprint) != cache.key(comp, changed.fingerprint)
    assert not frames.load(other, ws).from_cache


@pytest.mark.parametrize("damage", ["truncated", "meta", "shape", "labels"])
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
    else:
        np.save(folder / "y.npy", np.full(len(good.y), len(comp.classes), np.int64))  # no such class
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
    (root / ".generic-killed").mkdir(parents=True)
    (root / ".generic-killed" / "X.npy").write_bytes(b"half")
    frames.convert(comp, ws)
    assert [p.name for p in root.iterdir()] == [f"generic-{cache.key(comp, frames.load(comp, ws).fingerprint)}"]


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
