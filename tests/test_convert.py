import os
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from pipeline import competitions, convert, images
from pipeline.errors import DataError
from pipeline.workspace import Workspace

DIGITS = competitions.get("digit-recognizer")
FIX = convert.Path(__file__).parent / "fixtures" / "digit-recognizer"


def test_digits_follow_the_pixel_convention(fetched):
    arrays = convert.convert_digits(DIGITS, Workspace(fetched))
    raw = pd.read_csv(FIX / "train.csv").to_numpy()
    assert arrays.train_images.shape == (300, 28, 28) and arrays.train_images.dtype == np.uint8
    assert arrays.test_images.shape == (100, 28, 28)
    assert np.array_equal(arrays.train_labels, raw[:, 0])
    # row-major: pixel i is at row i // 28, column i % 28
    assert np.array_equal(arrays.train_images[5], raw[5, 1:].reshape(28, 28))
    assert arrays.train_images.max() == 255 and arrays.train_images.min() == 0
    assert not arrays.from_cache


def test_cache_is_reused_without_parsing_and_invalidated_by_a_changed_csv(fetched, monkeypatch):
    ws = Workspace(fetched)
    first = convert.convert_digits(DIGITS, ws)
    calls = []
    real = convert.read_pixel_csv
    monkeypatch.setattr(convert, "read_pixel_csv", lambda *a: calls.append(a) or real(*a))
    again = convert.convert_digits(DIGITS, ws)
    assert again.from_cache and calls == []
    assert isinstance(again.train_images, np.memmap)
    assert np.array_equal(again.train_images, first.train_images)
    train_csv = fetched / "competitions/digit-recognizer/train.csv"
    lines = train_csv.read_text().splitlines(keepends=True)
    train_csv.write_text("".join(lines[:101]))  # keep 100 rows
    later = time.time() + 5
    os.utime(train_csv, (later, later))
    changed = convert.convert_digits(DIGITS, ws)
    assert not changed.from_cache and len(changed.train_images) == 100 and len(calls) == 2


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (3, "pixel100", "256", "train.csv: row 3, column pixel100: '256' is not an integer 0-255"),
        (7, "pixel5", "-1", "train.csv: row 7, column pixel5: '-1' is not an integer 0-255"),
        (2, "pixel0", "abc", "train.csv: row 2, column pixel0: 'abc' is not an integer 0-255"),
        (4, "pixel9", "", "train.csv: row 4, column pixel9: missing value"),
        (5, "label", "12", "train.csv: row 5, column label: '12' is not an integer 0-9"),
    ],
)
def test_bad_cells_are_named_and_nothing_is_cached(fetched, row, column, value, message):
    path = fetched / "competitions/digit-recognizer/train.csv"
    df = pd.read_csv(path, dtype=str)
    df.loc[row - 1, column] = value
    df.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        convert.convert_digits(DIGITS, Workspace(fetched))
    assert str(err.value) == message
    assert not (fetched / "competitions/digit-recognizer/derived/arrays.json").exists()


def test_short_row_is_named(fetched):
    path = fetched / "competitions/digit-recognizer/test.csv"
    lines = path.read_text().splitlines()
    lines[10] = lines[10].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="test.csv: row 10 has 783 values, expected 784"):
        convert.convert_digits(DIGITS, Workspace(fetched))


def test_not_fetched_says_which_command_to_run(workspace):
    with pytest.raises(DataError, match="digit-recognizer is not fetched yet .*: run `kc fetch digit-recognizer`"):
        convert.convert_digits(DIGITS, Workspace(workspace))


def test_pngs_round_trip_in_the_folder_per_class_layout(fetched):
    ws = Workspace(fetched)
    arrays = convert.convert_digits(DIGITS, ws)
    root, written = convert.write_digit_pngs(DIGITS, ws, arrays)
    assert written == 400
    assert sorted(p.name for p in (root / "train").iterdir()) == [str(d) for d in range(10)]
    for row in (0, 123, 299):
        label = arrays.train_labels[row]
        assert np.array_equal(images.read_png(root / f"train/{label}/{row}.png"), arrays.train_images[row])
    assert np.array_equal(images.read_png(root / "test/1.png"), arrays.test_images[0])
    assert np.array_equal(images.read_png(root / "test/100.png"), arrays.test_images[99])
    assert convert.write_digit_pngs(DIGITS, ws, arrays)[1] == 0  # existing files are skipped
    shutil.rmtree(root / "test")
    assert convert.write_digit_pngs(DIGITS, ws, arrays)[1] == 100
    assert convert.write_digit_pngs(DIGITS, ws, arrays, force=True)[1] == 400


def test_float_conversion_is_in_one_place():
    x = np.array([[[0] * 28] * 27 + [[255] * 28]], dtype=np.uint8)
    raw = images.to_float(x, normalise=False)
    assert raw.shape == (1, 1, 28, 28) and raw.dtype == np.float32
    assert raw.min() == 0.0 and raw.max() == 1.0
    norm = images.to_float(x)
    assert np.isclose(norm.min(), -images.MEAN / images.STD)
    with pytest.raises(ValueError, match=r"expected \(n, 28, 28\) uint8"):
        images.to_float(x.astype(np.float32))
    with pytest.raises(ValueError, match=r"expected \(n, 784\) uint8"):
        images.to_images(np.zeros((2, 783), np.uint8))


def test_contact_sheet_is_written(fetched):
    path = convert.digit_sheet(DIGITS, Workspace(fetched), label=8, n=12, seed=0)
    assert path.name == "digits-8-12.png" and path.stat().st_size > 1000
