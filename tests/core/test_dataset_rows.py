"""Rows taken from a memory-mapped matrix: the same copy as X[rows], without the mapped pages staying resident."""

from pathlib import Path

import numpy as np
import pytest

from pipeline.core import dataset
from pipeline.core.dataset import take_rows


def resident_mb(path) -> float:
    """MB of `path`'s mappings resident in this process (their Rss in /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = fields[-1] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total / 1024


@pytest.fixture
def mapped(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, np.random.default_rng(0).normal(size=(200_000, 15)).astype(np.float32))  # 11.4 MB
    return path, np.load(path, mmap_mode="c")


@pytest.mark.parametrize("share", [0.9, 0.1, 0.0001])
def test_take_rows_copies_what_indexing_copies_without_the_mapping_becoming_resident(mapped, monkeypatch, share):
    path, X = mapped
    monkeypatch.setattr(dataset, "_STRETCH_BYTES", 600_000)  # 10,000 rows of 15 float32
    rows = np.sort(np.random.default_rng(1).choice(len(X), max(1, int(share * len(X))), replace=False))
    taken = take_rows(X, rows)
    assert not isinstance(taken, np.memmap) and taken.flags.owndata and taken.dtype == np.float32
    assert resident_mb(path) < 0.1  # read from the file: the mapping untouched (11.4 MB)
    assert np.array_equal(taken, X[rows])  # indexing the mapping gives the same rows...
    assert resident_mb(path) > 0.5 * share * 11.4  # ...and leaves their pages resident, which take_rows did not


def test_views_plain_arrays_and_a_changed_file_are_indexed_as_usual(mapped):
    path, X = mapped
    assert np.array_equal(take_rows(X, np.array([9, 4, 1])), X[[9, 4, 1]])  # rows out of order: indexed
    rows = np.array([1, 4, 9])
    for array in (X[5:], X[:, :3], np.arange(40, dtype=np.float32).reshape(10, 4)):
        assert np.array_equal(take_rows(array, rows), array[rows])
    with open(path, "ab") as f:  # the file no longer matches the mapping: the mapping is what counts
        f.write(b"\0" * 60)
    assert np.array_equal(take_rows(X, rows), X[rows])
    path.unlink()  # a newer cache cleared the old one away while a run still maps it
    assert np.array_equal(take_rows(X, rows), X[rows])
