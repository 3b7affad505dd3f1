import dataclasses
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiles

from pipeline.core import competitions
from pipeline.core.errors import DataError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.pixels import arrays, images

DIGITS = competitions.get("digit-recognizer")
FIX = Path(__file__).parents[1] / "fixtures" / "digit-recognizer"


def test_digits_follow_the_pixel_convention(fetched):
    cached = arrays.convert(DIGITS, Workspace(fetched))
    raw = pd.read_csv(FIX / "train.csv").to_numpy()
    assert cached.train_images.shape == (300, 28, 28) and cached.train_images.dtype == np.uint8
    assert cached.test_images.shape == (100, 28, 28)
    assert cached.train_labels.dtype == np.int64
    assert np.array_equal(cached.train_labels, raw[:, 0])  # class codes; a digit's code is the digit
    # row-major: pixel i is at row i // 28, column i % 28
    assert np.array_equal(cached.train_images[5], raw[5, 1:].reshape(28, 28))
    assert cached.train_images.max() == 255 and cached.train_images.min() == 0
    assert not cached.from_cache


def test_cache_is_reused_without_parsing_and_invalidated_by_a_changed_csv(fetched, monkeypatch):
    ws = Workspace(fetched)
    first = arrays.convert(DIGITS, ws)
    calls = []
    real = arrays.read_pixel_csv
    monkeypatch.setattr(arrays, "read_pixel_csv", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = arrays.convert(DIGITS, ws)
    assert again.from_cache and calls == []
    assert isinstance(again.train_images, np.memmap)
    assert np.array_equal(again.train_images, first.train_images)
    assert again.fingerprint == first.fingerprint
    train_csv = fetched / "competitions/digit-recognizer/train.csv"
    lines = train_csv.read_text().splitlines(keepends=True)
    train_csv.write_text("".join(lines[:101]))  # keep 100 rows
    later = time.time() + 5
    os.utime(train_csv, (later, later))
    changed = arrays.convert(DIGITS, ws)
    assert not changed.from_cache and len(changed.train_images) == 100 and len(calls) == 2
    assert changed.fingerprint != first.fingerprint


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (3, "pixel100", "256", "train.csv: row 3, column pixel100: '256' is not an integer 0-255"),
        (7, "pixel5", "-1", "train.csv: row 7, column pixel5: '-1' is not an integer 0-255"),
        (2, "pixel0", "abc", "train.csv: row 2, column pixel0: 'abc' is not an integer 0-255"),
        (2, "pixel3", "0.25", "train.csv: row 2, column pixel3: '0.25' is not an integer 0-255; kc reads pixels as "
                              "whole numbers: for fractions of 0-1, write round(x * 255)"),
        (4, "pixel9", "", "train.csv: row 4, column pixel9: missing value"),
        (5, "label", "12", "train.csv: row 5, column label: '12' is not one of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"),
    ],
)
def test_bad_cells_are_named_and_nothing_is_cached(fetched, row, column, value, message):
    path = fetched / "competitions/digit-recognizer/train.csv"
    df = pd.read_csv(path, dtype=str)
    df.loc[row - 1, column] = value
    df.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        arrays.convert(DIGITS, Workspace(fetched))
    assert str(err.value) == message
    assert not (fetched / "competitions/digit-recognizer/derived/arrays.json").exists()


def test_short_row_is_named(fetched):
    path = fetched / "competitions/digit-recognizer/test.csv"
    lines = path.read_text().splitlines()
    lines[10] = lines[10].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        arrays.convert(DIGITS, Workspace(fetched))
    assert str(err.value) == "test.csv: row 10 has 783 values, expected 784"


@pytest.mark.parametrize("rows_end", ["", ",,"])
def test_a_header_ending_in_empty_cells_reads_as_without_them(fetched, rows_end):
    path = fetched / "competitions/digit-recognizer/train.csv"
    before = arrays.read_pixel_csv(path, DIGITS, label=True)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",,"] + [line + rows_end for line in lines[1:]]) + "\n")
    images, labels = arrays.read_pixel_csv(path, DIGITS, label=True)
    assert np.array_equal(images, before[0]) and np.array_equal(labels, before[1])


def test_rows_padded_unlike_the_first_are_the_ones_named(fetched):
    path = fetched / "competitions/digit-recognizer/train.csv"
    lines = path.read_text().splitlines()
    padded = [lines[0] + ",,", lines[1] + ",,", ""] + [line + "," for line in lines[2:]]  # a blank line is skipped
    path.write_text("\n".join(padded) + "\n")
    with pytest.raises(DataError) as err:
        arrays.read_pixel_csv(path, DIGITS, label=True)
    assert str(err.value) == "train.csv: row 3 has 786 values, expected 787"  # rows counted as lines


def test_not_fetched_says_which_command_to_run(workspace):
    with pytest.raises(DataError) as err:
        arrays.convert(DIGITS, Workspace(workspace))
    assert str(err.value) == (f"digit-recognizer is not fetched yet in {workspace}: "
                              "run `kc fetch digit-recognizer` first")


@pytest.mark.slow
def test_pngs_round_trip_in_the_folder_per_class_layout(fetched):
    ws = Workspace(fetched)
    cached = arrays.convert(DIGITS, ws)
    root, written = arrays.write_pngs(DIGITS, ws, cached)
    assert written == 400
    assert sorted(p.name for p in (root / "train").iterdir()) == [str(d) for d in range(10)]
    for row in (0, 123, 299):
        label = cached.train_labels[row]
        assert np.array_equal(images.read_png(root / f"train/{label}/{row}.png"), cached.train_images[row])
    assert np.array_equal(images.read_png(root / "test/1.png"), cached.test_images[0])
    assert np.array_equal(images.read_png(root / "test/100.png"), cached.test_images[99])
    assert arrays.write_pngs(DIGITS, ws, cached)[1] == 0  # existing files are skipped
    shutil.rmtree(root / "test")
    assert arrays.write_pngs(DIGITS, ws, cached)[1] == 100
    assert arrays.write_pngs(DIGITS, ws, cached, force=True)[1] == 400


def test_contact_sheet_is_written(fetched):
    path = arrays.sheet(DIGITS, Workspace(fetched), label="8", n=12, seed=0)
    assert path == fetched / "competitions/digit-recognizer/derived/images-8-12.png"
    assert path.stat().st_size > 1000
    everything = arrays.sheet(DIGITS, Workspace(fetched), label=None, n=5, seed=0)
    assert everything.name == "images-all-5.png"


def test_contact_sheet_refuses_tables_and_unknown_labels(fetched):
    ws = Workspace(fetched)
    with pytest.raises(UsageError) as err:
        arrays.sheet(competitions.get("titanic"), ws, None, 4, 0)
    assert str(err.value) == ("kc show draws pixel competitions; titanic is tabular: for a first look at a table, "
                              "run `kc explore titanic`")
    with pytest.raises(UsageError) as err:
        arrays.sheet(DIGITS, ws, "x", 4, 0)
    assert str(err.value) == "--label x: expected one of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"


def test_digit_test_ids_are_row_numbers(fetched):
    assert arrays.test_ids(DIGITS, Workspace(fetched), 3).tolist() == [1, 2, 3]


def test_any_image_shape_and_string_labels(tmp_path):
    """A pixel competition that is not digits: 2×3 images, labels that are not class codes, ids in test.csv."""
    comp = dataclasses.replace(DIGITS, slug="tiles", image_shape=(2, 3), classes=("3", "7", "9"), aliases=(),
                               test_has_ids=True)
    header = ",".join(comp.pixel_columns)
    train = tmp_path / "train.csv"
    train.write_text(f"label,{header}\n9,0,1,2,3,4,5\n3,255,0,0,0,0,7\n")
    images_, codes = arrays.read_pixel_csv(train, comp, label=True)
    assert images_.shape == (2, 2, 3) and images_.dtype == np.uint8
    assert images_[0].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert codes.tolist() == [2, 0]  # indices into comp.classes
    test = tmp_path / "test.csv"
    test.write_text(f"ImageId,{header}\n17,1,1,1,1,1,1\n")
    images_, codes = arrays.read_pixel_csv(test, comp, label=False)
    assert images_.shape == (1, 2, 3) and codes is None
    train.write_text(f"label,{header}\n9,0,1,2,3,4,5\n4,255,0,0,0,0,7\n")
    with pytest.raises(DataError) as err:
        arrays.read_pixel_csv(train, comp, label=True)
    assert str(err.value) == "train.csv: row 2, column label: '4' is not one of 3, 7, 9"
    train.write_text(f"label,{header}\n9.0,0,1,2,3,4,5\n3.00,255,0,0,0,0,7\n")  # whole numbers written as floats
    assert arrays.read_pixel_csv(train, comp, label=True)[1].tolist() == [2, 0]
    train.write_text(f"label,{header}\n9.0,0,1,2,3,4,5\n3.5,255,0,0,0,0,7\n")
    with pytest.raises(DataError) as err:
        arrays.read_pixel_csv(train, comp, label=True)
    assert str(err.value) == "train.csv: row 2, column label: '3.5' is not one of 3, 7, 9"


def test_leftovers_of_a_killed_convert_are_cleaned(fetched):
    from pipeline.core import competitions
    from pipeline.core.workspace import Workspace
    from pipeline.pixels import arrays

    comp, ws = competitions.get("digit-recognizer"), Workspace(fetched)
    derived = ws.cache_dir(comp.slug)
    derived.mkdir(parents=True, exist_ok=True)
    leftover = derived / ".train_images.npy.abc123.npy.tmp"  # what atomic_path leaves when killed mid-write
    leftover.write_bytes(b"half an array")
    arrays.convert(comp, ws, force=True)
    assert not leftover.exists()
    assert arrays.convert(comp, ws).from_cache


@pytest.mark.parametrize(("rows", "message"), [
    ("91,1,1,1,1\n93,1,1,1,1\n93,1,1,1,1\n", "test.csv: row 3, column ImageId: id '93' appears twice; every test "
                                             "row needs its own id"),
    ("91,1,1,1,1\nx2,1,1,1,1\n93,1,1,1,1\n", "test.csv: row 2, column ImageId: id 'x2' is not a valid id (an "
                                             "integer); every test row needs its own id"),
])
def test_pixel_test_ids_are_checked(workspace, rows, message):
    comp = tiles(workspace)
    assert comp.modality == "pixels" and comp.test_has_ids and comp.id_type == "int"
    (workspace / "competitions/tiles/test.csv").write_text("ImageId,pixel0,pixel1,pixel2,pixel3\n" + rows)
    with pytest.raises(DataError) as err:
        arrays.load(comp, Workspace(workspace))
    assert str(err.value) == message


@pytest.mark.parametrize(("name", "planted"), [
    ("train_labels.npy", lambda a: np.where(np.arange(len(a.train_labels)) == 3, 99, a.train_labels)),
    ("test_images.npy", lambda a: np.zeros((len(a.test_images), 5, 5), np.uint8)),
    ("train_labels.npy", lambda a: a.train_labels.astype(np.float64)),
    ("test_images.npy", lambda a: a.test_images[:10]),
])
def test_a_planted_cache_with_a_matching_meta_is_rebuilt(fetched, name, planted):
    ws = Workspace(fetched)
    first = arrays.convert(DIGITS, ws)
    np.save(ws.cache_dir(DIGITS.slug) / name, planted(first))
    again = arrays.convert(DIGITS, ws)
    assert not again.from_cache
    assert np.array_equal(again.train_labels, first.train_labels)
    assert again.test_images.shape == first.test_images.shape
