"""Fault injection: the cases an earlier red-team run found, each checked against kc's fix.

Whatever goes wrong, kc must end with one `Error:` line (exit 1; exit 2 for a bug in kc itself), never run
code planted in a run folder, never lose or mix good data, and never hang on or fill the disk with hostile input.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, install

from pipeline.core import competitions
from pipeline.core.errors import KcError
from pipeline.core.workspace import Workspace
from pipeline.ingest import kaggle_api, sources

TITANIC = competitions.get("titanic")
DIGITS = competitions.get("digit-recognizer")
ROOT = Path(__file__).resolve().parents[1]


# --- helpers --------------------------------------------------------------------------------------------------------


def one_error(result, code: int = 1) -> str:
    """The single `Error:` line of a failed command that exited with `code`; fail showing what came out instead."""
    lines = result.stderr.splitlines()
    detail = (f"exit {result.exit_code}, stderr {result.stderr[:1500]!r}, stdout {result.stdout[-500:]!r}, "
              f"exception {result.exception!r}")
    assert result.exit_code == code and len(lines) == 1 and lines[0].startswith("Error: "), detail
    return lines[0]


def succeeded(result) -> str:
    """stdout of a command that must succeed."""
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr[:1500]!r} {result.exception!r}"
    return result.stdout


class Plant:
    """A pickle whose unpickling creates `marker`: proof that kc executed a planted file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload(marker: Path) -> bytes:
    return pickle.dumps(Plant(marker), protocol=2)  # torch's weights-only loader warns about newer protocols


def zip_of(path: Path, entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def fixture_bytes(slug: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((FIXTURES / slug).iterdir())}


def patch_entry(path: Path, name: str, *, flag: int | None = None, method: int | None = None,
                crc: int | None = None, size: int | None = None) -> None:
    """Rewrite fields of entry `name` in both its local header and its central directory record."""
    data = bytearray(path.read_bytes())
    encoded, hits = name.encode(), 0
    # (signature, flag offset, method offset, crc offset (sizes follow), name-length offset, name offset)
    for sig, at_flag, at_method, at_crc, at_len, at_name in ((b"PK\x03\x04", 6, 8, 14, 26, 30),
                                                             (b"PK\x01\x02", 8, 10, 16, 28, 46)):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            start = i + 4
            n = struct.unpack_from("<H", data, i + at_len)[0]
            if bytes(data[i + at_name : i + at_name + n]) != encoded:
                continue
            hits += 1
            if flag is not None:
                struct.pack_into("<H", data, i + at_flag, struct.unpack_from("<H", data, i + at_flag)[0] | flag)
            if method is not None:
                struct.pack_into("<H", data, i + at_method, method)
            if crc is not None:
                struct.pack_into("<I", data, i + at_crc, crc)
            if size is not None:
                struct.pack_into("<I", data, i + at_crc + 8, size)
    assert hits == 2, f"{name}: found {hits} headers"
    path.write_bytes(bytes(data))


def zeros_bomb(path: Path, megabytes: int, declared: int) -> Path:
    """Titanic's zip with a train.csv that inflates to `megabytes` MB of zeros but declares `declared` bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)  # byte-aligned, independent of history
    stream = chunk * megabytes + b"\x03\x00"  # and a final empty block
    crc, zeros = 0, bytes(1 << 20)
    for _ in range(megabytes):
        crc = zlib.crc32(zeros, crc)
    files = fixture_bytes("titanic")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("train.csv"), stream, compress_type=zipfile.ZIP_STORED)
        for name in ("test.csv", "gender_submission.csv"):
            zf.writestr(name, files[name])
    patch_entry(path, "train.csv", method=zipfile.ZIP_DEFLATED, crc=crc, size=declared)
    return path


def python_kc(root: Path, *args: str | Path) -> subprocess.Popen:
    """kc in a process of its own, as a user runs it."""
    return subprocess.Popen([sys.executable, "-m", "pipeline", "--workspace", str(root), *map(str, args)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def train_option(*names: str) -> str:
    """The first of `names` that `kc train` takes (its k-fold option was `--cv`, now `--folds`)."""
    from typer.main import get_command

    from pipeline.cli.app import app

    command = get_command(app).commands["train"]  # type: ignore[attr-defined]
    taken = {opt for param in command.params for opt in getattr(param, "opts", [])}
    return next(name for name in names if name in taken)


def big_files(root: Path, limit: int) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_size > limit]


@pytest.fixture(autouse=True)
def _tracebacks_in_tmp(monkeypatch, tmp_path):
    """kc saves the traceback of a bug under the temp folder: keep them out of the real one."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A workspace with both competitions fetched and a few quick runs trained; copied by `trained`."""
    from pipeline.training.records import TrainConfig
    from pipeline.training.trainer import train

    root = tmp_path_factory.mktemp("template") / "ws"
    root.mkdir()
    ws = Workspace(root)
    install(root, "titanic")
    install(root, "digit-recognizer")
    ids = {}
    for key, comp, model, params in [("linear", TITANIC, "linear", {"epochs": 2}), ("knn", TITANIC, "knn", {}),
                                     ("sk", TITANIC, "sk-logistic", {"max_iter": 50}),
                                     ("digits", DIGITS, "linear", {"epochs": 1})]:
        ids[key] = train(comp, ws, TrainConfig(model=model, params=params)).run_id
    return root, ids


@pytest.fixture
def trained(template, tmp_path) -> tuple[Path, dict[str, str]]:
    """A fresh copy of the template workspace (mtimes kept, so runs still match their data)."""
    root = tmp_path / "ws"
    shutil.copytree(template[0], root)
    return root, template[1]


def run_dir(root: Path, comp, run_id: str) -> Path:
    return Workspace(root).runs_dir(comp.slug) / run_id


def rewrite_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data)))


def digit_photo(path: Path) -> Path:
    from PIL import Image, ImageDraw

    im = Image.new("L", (120, 120), 255)
    ImageDraw.Draw(im).line([(60, 15), (60, 105)], fill=0, width=12)  # a thick "1" on white paper
    im.save(path)
    return path


# --- code execution ------------------------------------------------------------------------------------------------


def test_the_planted_pickle_would_run_if_unpickled(tmp_path):
    marker = tmp_path / "proof"
    pickle.loads(payload(marker))  # what a careless loader would do
    assert marker.exists()


POISONS = ["estimator.pkl in an sk-logistic run", "config switched to sk-logistic", "pickle named estimator.skops",
           "pickle named weights.pt"]


def poison(root: Path, ids: dict[str, str], how: str, digits: bool, marker: Path) -> str:
    """Plant a code-running pickle in a run, the way `how` says; return the run's id."""
    comp = DIGITS if digits else TITANIC
    base = "digits" if digits else ("sk" if how in POISONS[0::2] else "linear")
    folder = run_dir(root, comp, ids[base])
    if base != "sk" and how != POISONS[3]:  # make the run claim to be a scikit-learn one
        rewrite_json(folder / "config.json", lambda c: {**c, "model": "sk-logistic", "params": {}})
    if how in POISONS[:2]:
        (folder / "estimator.skops").unlink(missing_ok=True)
        (folder / "estimator.pkl").write_bytes(payload(marker))
    elif how == POISONS[2]:
        (folder / "estimator.skops").write_bytes(payload(marker))
    else:
        (folder / "weights.pt").write_bytes(payload(marker))
    return folder.name


@pytest.mark.slow
@pytest.mark.parametrize(("command", "how"), [
    (command, how) for command in ("submit", "ensemble", "predict-image") for how in POISONS
    if not (command == "predict-image" and how == POISONS[0])])  # no real sk-logistic digit run: config-switched
def test_a_planted_pickle_is_never_executed(trained, kc, tmp_path, command, how):
    root, ids = trained
    marker = tmp_path / "code-ran"
    bad = poison(root, ids, how, command == "predict-image", marker)
    if command == "submit":
        result = kc("submit", "titanic", "--run", bad, ws=root)
    elif command == "ensemble":
        result = kc("ensemble", "titanic", ids["knn"], bad, ws=root)
    else:
        result = kc("predict-image", digit_photo(tmp_path / "one.png"), "--run", bad, ws=root)
    line = one_error(result)
    assert not marker.exists(), "kc unpickled a planted file"
    assert bad in line
    assert not (root / "submissions/titanic").exists() or not list((root / "submissions/titanic").glob("*.csv"))


# --- data loss and wrong data --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("bad_first", [True, False])
def test_two_first_fetches_at_once_one_of_them_bad_keep_the_good_data(tmp_path, fixture_zips, bad_first):
    root = tmp_path / "ws"
    root.mkdir()
    good = fixture_zips["titanic"]
    data = bytearray(good.read_bytes())
    data[200:260] = b"\x00" * 60  # damage the first entry's compressed bytes; the directory stays readable
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    order = [bad, good] if bad_first else [good, bad]
    procs = {str(z): python_kc(root, "fetch", "titanic", "--from", z) for z in order}
    outcome = {z: (p.wait(timeout=120), p.stderr.read()) for z, p in procs.items()}
    assert outcome[str(good)][0] == 0, outcome
    folder = root / "competitions/titanic"
    for name, content in fixture_bytes("titanic").items():
        assert (folder / name).read_bytes() == content
    assert sources.read_marker(folder)["origin"] == str(good)
    assert not list(folder.glob(f"{sources.STAGING}*"))


def test_force_without_credentials_keeps_the_real_data(workspace, fixture_zips, kc):
    succeeded(kc("fetch", "digit-recognizer", "--from", fixture_zips["digit-recognizer"], ws=workspace))
    folder = workspace / "competitions/digit-recognizer"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    line = one_error(kc("fetch", "digit-recognizer", "--force", ws=workspace))
    assert "--force" in line and "--from" in line  # says how to replace it anyway
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert sources.read_marker(folder)["sample"] is False


@pytest.mark.slow
def test_two_trainings_at_once_both_succeed_with_distinct_run_ids(titanic_only):
    procs = [python_kc(titanic_only, "train", "titanic", "--model", "knn") for _ in range(2)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    ids = [next(line.split()[1] for line in out.splitlines() if line.startswith("run ")) for _, out, _ in results]
    assert ids[0] != ids[1]
    from pipeline.training.records import scan

    good, damaged = scan(TITANIC, Workspace(titanic_only))
    assert sorted(r.run_id for r in good) == sorted(ids) and not damaged


class Killed(BaseException):
    """The process dying (nothing catches it)."""


def test_a_kill_after_the_first_rename_leaves_not_fetched_then_a_full_install(workspace, tmp_path, kc, monkeypatch):
    succeeded(kc("fetch", "titanic", "--from", FIXTURES / "titanic", ws=workspace))
    newer = fixture_bytes("titanic")
    newer["train.csv"] += newer["train.csv"].splitlines(keepends=True)[-1].replace(b"300,", b"301,", 1)
    newer_zip = zip_of(tmp_path / "newer.zip", newer)
    real, calls = os.replace, []

    def dies_after_one(src, dst):
        if calls:
            raise Killed
        calls.append(dst)
        real(src, dst)

    monkeypatch.setattr(sources.os, "replace", dies_after_one)
    with pytest.raises(Killed):
        sources.fetch("titanic", Workspace(workspace), newer_zip, force=True)
    monkeypatch.setattr(sources.os, "replace", real)
    assert len(calls) == 1
    assert "titanic is not fetched yet" in one_error(kc("convert", "titanic", ws=workspace))
    out = succeeded(kc("fetch", "titanic", "--from", newer_zip, ws=workspace))
    assert "already fetched" not in out
    folder = workspace / "competitions/titanic"
    assert {n: (folder / n).read_bytes() for n in newer} == newer
    succeeded(kc("convert", "titanic", ws=workspace))


def test_a_top_level_file_wins_over_an_older_copy_and_same_depth_twins_are_refused(workspace, tmp_path, kc):
    files = fixture_bytes("titanic")
    stale = b"PassengerId,Survived\n1,0\n"
    both = tmp_path / "both.zip"
    with zipfile.ZipFile(both, "w") as zf:
        zf.writestr("old-version/train.csv", stale)  # listed before the top-level one
        for name, data in files.items():
            zf.writestr(name, data)
    succeeded(kc("fetch", "titanic", "--from", both, ws=workspace))
    assert (workspace / "competitions/titanic/train.csv").read_bytes() == files["train.csv"]
    twins = zip_of(tmp_path / "twins.zip", {"a/train.csv": files["train.csv"], "b/train.csv": stale,
                                            **{f"a/{n}": d for n, d in files.items() if n != "train.csv"}})
    line = one_error(kc("fetch", "titanic", "--from", twins, "--force", ws=workspace))
    assert "two entries named train.csv" in line
    assert (workspace / "competitions/titanic/train.csv").read_bytes() == files["train.csv"]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_png_from_an_interrupted_convert_is_rewritten(fetched, kc, damage):
    succeeded(kc("convert", "digit-recognizer", "--images", ws=fetched))
    png = fetched / "competitions/digit-recognizer/derived/png"
    label = (FIXTURES / "digit-recognizer/train.csv").read_text().splitlines()[1].split(",")[0]
    victim = png / "train" / label / "0.png"
    whole = victim.read_bytes()
    victim.write_bytes(b"" if damage == "empty" else whole[: len(whole) // 2])
    leftover = png / "test" / "1.png.99999.tmp"
    leftover.write_bytes(b"half")
    out = succeeded(kc("convert", "digit-recognizer", "--images", ws=fetched))
    assert "PNGs: 1 written" in out
    assert victim.read_bytes() == whole and not leftover.exists()


# --- hangs and exhaustion ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("megabytes", "declared"), [(200, 0xFFFFFFFE), (200, 1 << 20)],
                         ids=["claims-4GB", "claims-1MB-inflates-to-200MB"])
def test_a_zip_bomb_is_refused_before_it_fills_the_disk(workspace, tmp_path, kc, megabytes, declared):
    bomb = zeros_bomb(tmp_path / "bomb.zip", megabytes, declared)
    assert bomb.stat().st_size < 1 << 20
    written = []
    t0 = time.perf_counter()
    with pytest.raises(KcError):
        sources.fetch("titanic", Workspace(workspace), bomb, progress=lambda done, total: written.append(done))
    assert time.perf_counter() - t0 < 10
    assert max(written, default=0) <= 2 << 20  # stopped within a couple of MB
    line = one_error(kc("fetch", "titanic", "--from", bomb, ws=workspace))
    assert len(line) < 300
    assert not big_files(workspace, 2 << 20)
    assert not (workspace / "competitions/titanic").exists()


def test_validating_a_huge_file_is_refused_at_once(titanic_only, tmp_path, kc):
    huge = tmp_path / "huge.csv"
    with open(huge, "wb") as f:
        f.truncate(2 << 30)  # sparse: 2 GB that take no disk
    t0 = time.perf_counter()
    result = kc("validate", "titanic", huge, ws=titanic_only)
    assert time.perf_counter() - t0 < 5
    line = one_error(result)
    assert len(result.stderr) < 300 and "huge.csv" in line


LONG = "Q" * 10_000


def _cell_cases() -> list[tuple[str, str, str, bytes]]:
    """(command, file in the workspace or 'submission', original line, replacement): each puts LONG in a cell."""
    return [
        ("validate", "submission", "892,0", f"892,{LONG}"),
        ("validate", "submission", "892,0", f"{LONG},0"),
        ("validate", "submission", "892,0", f"892,0,{LONG}"),
        ("validate", "submission", "PassengerId,Survived", f"PassengerId,{LONG}"),
        ("convert-titanic", "train.csv", "1,0,3,", f"1,{LONG},3,"),
        ("convert-titanic", "test.csv", "892,3,", f"892,{LONG},"),
        ("convert-digits", "train.csv", None, LONG),
        ("fetch", "test.csv", "PassengerId,Pclass", f"PassengerId,{LONG},Pclass"),
    ]


@pytest.mark.parametrize(("command", "where", "old", "new"), _cell_cases())
def test_error_messages_quote_at_most_100_characters_of_a_cell(fetched, tmp_path, kc, command, where, old, new):
    if command == "validate":
        sub = tmp_path / "sub.csv"
        sub.write_text((FIXTURES / "titanic/gender_submission.csv").read_text().replace(old, new, 1))
        result = kc("validate", "titanic", sub, ws=fetched)
    elif command == "convert-titanic":
        path = fetched / "competitions/titanic" / where
        path.write_text(path.read_text().replace(old, new, 1))
        result = kc("convert", "titanic", ws=fetched)
    elif command == "fetch":
        src = tmp_path / "src"
        shutil.copytree(FIXTURES / "titanic", src)
        (src / where).write_text((src / where).read_text().replace(old, new, 1))
        result = kc("fetch", "titanic", "--from", src, "--force", ws=fetched)
    else:
        path = fetched / "competitions/digit-recognizer" / where
        lines = path.read_text().splitlines()
        cells = lines[5].split(",")
        cells[300] = new
        lines[5] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
        result = kc("convert", "digit-recognizer", ws=fetched)
    line = one_error(result)
    assert "Q" * 101 not in line and len(line) < 300, line[:400]


def test_ctrl_c_in_the_first_fold_stops_cross_validation(titanic_only, kc, monkeypatch):
    from pipeline.models.linear import LinearModel

    fits = []
    real_fit = LinearModel.fit

    def counted(self, *args, **kwargs):
        fits.append(1)
        return real_fit(self, *args, **kwargs)

    def ctrl_c(self, out, target):
        raise KeyboardInterrupt  # pressed during the first batch of fold 1

    monkeypatch.setattr(LinearModel, "fit", counted)
    monkeypatch.setattr(LinearModel, "_loss", ctrl_c)
    t0 = time.perf_counter()
    result = kc("train", "titanic", "--model", "linear", train_option("--folds", "--cv"), "5", ws=titanic_only)
    assert time.perf_counter() - t0 < 30
    assert len(fits) == 1, f"{len(fits)} fits ran after Ctrl-C"
    assert one_error(result, code=130) == "Error: interrupted"
    assert not list(Workspace(titanic_only).runs_dir("titanic").glob("[!.]*"))


# --- tracebacks instead of one Error: line -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["encrypted", "deflate64"])
def test_a_zip_python_cannot_unpack_is_one_error(workspace, fixture_zips, tmp_path, kc, how):
    odd = tmp_path / f"{how}.zip"
    shutil.copy(fixture_zips["titanic"], odd)
    if how == "encrypted":
        patch_entry(odd, "train.csv", flag=0x1)
    else:
        patch_entry(odd, "train.csv", method=9)
    line = one_error(kc("fetch", "titanic", "--from", odd, ws=workspace))
    assert "--from" in line  # says to unzip it and fetch the folder
    assert not (workspace / "competitions/titanic").exists()


def _edit_digits(root: Path, name: str, edit) -> None:
    path = root / "competitions/digit-recognizer" / name
    path.write_bytes(edit(path.read_bytes()))


def _cell(data: bytes, row: int, column: int, value: bytes) -> bytes:
    lines = data.split(b"\n")
    cells = lines[row].split(b",")
    cells[column] = value
    lines[row] = b",".join(cells)
    return b"\n".join(lines)


@pytest.mark.parametrize(("name", "edit"), [
    ("train.csv", lambda d: _cell(d, 3, 200, "²".encode())),
    ("test.csv", lambda d: _cell(d, 3, 200, "²".encode())),
    ("train.csv", lambda d: _cell(d, 3, 200, b"1\xff")),
    ("train.csv", lambda d: _cell(d, 3, 0, b"\xff")),
    ("train.csv", lambda d: _cell(d, 0, 200, b"pixel199\xff")),
    ("test.csv", lambda d: _cell(d, 0, 200, b"pixel200\xff")),
    ("train.csv", lambda d: _cell(d, 3, 200, b"7" * (64 << 20))),
    ("train.csv", lambda d: _cell(d, 0, 0, b"")),
], ids=["superscript-2", "superscript-2-in-test", "xff-in-cell", "xff-as-label", "xff-in-train-header",
        "xff-in-test-header", "64MB-cell", "label-header-emptied"])
def test_odd_bytes_in_a_digit_csv_are_one_error(fetched, kc, name, edit):
    _edit_digits(fetched, name, edit)
    line = one_error(kc("convert", "digit-recognizer", ws=fetched))
    assert name in line and len(line) < 300


def test_a_64mb_header_field_is_one_error_at_fetch(workspace, tmp_path, kc):
    src = tmp_path / "src"
    shutil.copytree(FIXTURES / "titanic", src)
    (src / "train.csv").write_bytes(b"x" * (64 << 20) + b"\n1\n")
    line = one_error(kc("fetch", "titanic", "--from", src, ws=workspace))
    assert "train.csv" in line and len(line) < 300


@pytest.mark.slow
def test_a_64mb_name_in_titanic_is_no_traceback(titanic_only, kc):
    path = titanic_only / "competitions/titanic/train.csv"
    path.write_bytes(path.read_bytes().replace(b"Braund, Mr. Owen Harris", b"N" * (64 << 20), 1))
    assert "300 train" in succeeded(kc("convert", "titanic", ws=titanic_only))  # a long name is still a name


def test_a_csv_with_old_mac_line_endings_is_no_traceback(workspace, tmp_path, kc):
    src = tmp_path / "src"
    shutil.copytree(FIXTURES / "titanic", src)
    (src / "train.csv").write_bytes((src / "train.csv").read_bytes().replace(b"\r\n", b"\r"))
    succeeded(kc("fetch", "titanic", "--from", src, ws=workspace))
    assert "300 train" in succeeded(kc("convert", "titanic", ws=workspace))


def test_test_columns_in_another_order_are_read_by_name_but_pixels_are_one_error(workspace, tmp_path, kc):
    src = tmp_path / "src"
    shutil.copytree(FIXTURES / "titanic", src)
    rows = [line.split(",", 2) for line in (src / "test.csv").read_text().splitlines()]
    (src / "test.csv").write_text("".join(f"{b},{a},{rest}\n" for a, b, rest in rows))  # Pclass,PassengerId,...
    succeeded(kc("fetch", "titanic", "--from", src, ws=workspace))
    succeeded(kc("train", "titanic", "--model", "knn", ws=workspace))
    digits = tmp_path / "digits"
    shutil.copytree(FIXTURES / "digit-recognizer", digits)
    lines = (digits / "test.csv").read_text().splitlines()
    header = lines[0].split(",")
    header[0], header[1] = header[1], header[0]  # pixel1,pixel0,...: pixels are read by position
    (digits / "test.csv").write_text("\n".join([",".join(header), *lines[1:]]) + "\n")
    for slug in ("digit-recognizer", "digits-unknown-to-kc"):  # an inferred one, too: not taken for a table
        line = one_error(kc("fetch", slug, "--from", digits, ws=workspace))
        assert line.startswith("Error: test.csv: expected the columns pixel0 … pixel783"), line


@pytest.mark.slow
def test_a_latin1_titanic_just_works(workspace, tmp_path, kc):
    src = tmp_path / "src"
    shutil.copytree(FIXTURES / "titanic", src)
    text = (src / "train.csv").read_text(encoding="utf-8").replace("Braund, Mr. Owen Harris", "Öberg, Mr. Örjan")
    (src / "train.csv").write_bytes(text.encode("latin-1"))
    assert b"\xd6berg" in (src / "train.csv").read_bytes()
    succeeded(kc("fetch", "titanic", "--from", src, ws=workspace))
    assert "300 train" in succeeded(kc("convert", "titanic", ws=workspace))
    succeeded(kc("train", "titanic", "--model", "knn", ws=workspace))


@pytest.mark.parametrize(("new", "says"), [
    (b"99999999999999999999,0", "not an integer id"),
    (b"892,99999999999999999999", "not one of 0, 1"),
    ("\uff18\uff19\uff12,0".encode(), "not an integer id"),  # full-width 892
    ("\u0668\u0669\u0662,0".encode(), "not an integer id"),  # Arabic-Indic 892
    (b"892\xff,0", "not an integer id"),
], ids=["huge-id", "huge-label", "full-width-id", "arabic-indic-id", "xff-in-id"])
def test_odd_submission_cells_are_one_error(titanic_only, tmp_path, kc, new, says):
    sub = tmp_path / "sub.csv"
    sub.write_bytes((FIXTURES / "titanic/gender_submission.csv").read_bytes().replace(b"892,0", new, 1))
    line = one_error(kc("validate", "titanic", sub, ws=titanic_only))
    assert says in line and "row 1" in line


DAMAGES = {
    "metrics-list": ("metrics.json", lambda m: []),
    "metrics-empty": ("metrics.json", lambda m: {}),
    "metrics-string-score": ("metrics.json", lambda m: {**m, "score": "high"}),
    "metrics-null-score": ("metrics.json", lambda m: {**m, "score": None}),
    "metrics-history-string": ("metrics.json", lambda m: {**m, "history": "lots"}),
    "config-list": ("config.json", lambda c: []),
    "config-params-list": ("config.json", lambda c: {**c, "params": [1, 2]}),
    "config-unknown-model": ("config.json", lambda c: {**c, "model": "no-such-model"}),
    "config-params-wrong-type": ("config.json", lambda c: {**c, "params": {"epochs": "many"}}),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_run_is_listed_as_damaged_and_never_replaced_by_another(trained, kc, damage):
    root, ids = trained
    name, change = DAMAGES[damage]
    bad = ids["linear"]
    rewrite_json(run_dir(root, TITANIC, bad) / name, change)
    listing = succeeded(kc("runs", "titanic", ws=root))
    row = next((line for line in listing.splitlines() if bad in line), "")
    if damage.startswith("metrics") or damage in ("config-list", "config-params-list"):
        assert "DAMAGED" in row, listing
    line = one_error(kc("submit", "titanic", "--run", bad, ws=root))
    assert bad in line or "no-such-model" in line or "epochs" in line
    assert not (root / "submissions/titanic").exists()
    line = one_error(kc("ensemble", "titanic", ids["knn"], bad, ws=root))
    assert bad in line or "no-such-model" in line or "epochs" in line


@pytest.mark.slow
def test_a_config_without_params_is_no_traceback(trained, kc):
    root, ids = trained
    rewrite_json(run_dir(root, TITANIC, ids["linear"]) / "config.json",
                 lambda c: {k: v for k, v in c.items() if k != "params"})
    assert "submission" in succeeded(kc("submit", "titanic", "--run", ids["linear"], ws=root))  # params default {}
    assert ids["linear"] in succeeded(kc("runs", "titanic", ws=root))


def _npz(**arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _two_classes(n: int) -> np.ndarray:
    return np.zeros((n, 2), np.float32)


VALID_NPZ = {
    "random-bytes": lambda n: os.urandom(500),
    "empty": lambda n: b"",
    "object-arrays": lambda n: _npz(index=np.array([object()] * n), outputs=_two_classes(n)),
    "index-2d": lambda n: _npz(index=np.zeros((n, 2), np.int64), outputs=_two_classes(n)),
    "index-out-of-range": lambda n: _npz(index=np.arange(n) + 10**9, outputs=_two_classes(n)),
    "negative-index": lambda n: _npz(index=-np.arange(1, n + 1) * 10**6, outputs=_two_classes(n)),
    "outputs-wrong-width": lambda n: _npz(index=np.arange(n), outputs=np.zeros((n, 7), np.float32)),
    "outputs-strings": lambda n: _npz(index=np.arange(n), outputs=np.array(["a"] * n)),
    "no-outputs": lambda n: _npz(index=np.arange(n)),
}


@pytest.mark.slow
@pytest.mark.parametrize("garbage", list(VALID_NPZ))
def test_garbage_valid_npz_is_one_error(trained, kc, garbage):
    root, ids = trained
    with np.load(run_dir(root, TITANIC, ids["knn"]) / "valid.npz") as good:
        n = len(good["index"])
    for key in ("linear", "knn"):  # both, so the runs still look like they share a split
        (run_dir(root, TITANIC, ids[key]) / "valid.npz").write_bytes(VALID_NPZ[garbage](n))
    line = one_error(kc("ensemble", "titanic", ids["linear"], ids["knn"], ws=root))
    assert "valid.npz" in line


@pytest.mark.parametrize("content", ["[]", "{}", '{"fingerprint": 7}', "null", "\xff"])
def test_a_damaged_arrays_json_is_rebuilt(fetched, kc, content):
    succeeded(kc("convert", "digit-recognizer", ws=fetched))
    meta = fetched / "competitions/digit-recognizer/derived/arrays.json"
    meta.write_bytes(content.encode("latin-1"))
    assert "converted" in succeeded(kc("convert", "digit-recognizer", ws=fetched))
    assert json.loads(meta.read_text())["train_rows"] == 300


BAD_LOG_LINES = ["not json at all", "[]", '{"file": 3}', '"just a string"', "\udcff\udcfe{",
                 '{"file": "x.csv", "status": "written", "valid_score": "high"}',
                 '{"file": "y.csv", "status": "PENDING", "upload_ref": "abc"}']


@pytest.mark.slow
@pytest.mark.parametrize("bad", BAD_LOG_LINES)
def test_a_bad_log_line_does_not_stop_a_submission(trained, kc, bad):
    root, ids = trained
    log = root / "submissions/titanic/log.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(bad.encode("utf-8", "surrogateescape") + b"\n")
    succeeded(kc("submit", "titanic", "--run", ids["knn"], ws=root))
    written = root / f"submissions/titanic/{ids['knn']}.csv"
    assert written.is_file()
    lines = log.read_bytes().splitlines()
    assert json.loads(lines[-1])["file"] == written.name
    assert len(lines) == 2  # the bad line is kept as it was
    result = kc("submissions", "titanic", ws=root)
    assert written.name in succeeded(result)


@pytest.mark.parametrize("args", [
    ("--seed", "-1"), ("--seed", str(2**40)), ("--valid-pct", "0.9999"), ("--valid-pct", "0"), ("--valid-pct", "nan"),
    ("FOLDS", "2000"), ("FOLDS", "-3"), ("FOLDS", "1"), ("-m", "knn", "-p", "k=0"), ("-p", "bs=0"), ("-p", "lr=nan"),
    ("-p", "lr=inf"), ("-p", "epochs=-5"), ("-p", "epochs=1.5"), ("-p", "nonsense"), ("-p", "=3"),
    ("--device", "tpu"), ("-m", "no-such-model"), ("--features", "nope"), ("-m", "cnn"),
], ids=lambda a: " ".join(a))
def test_bad_train_options_are_one_error(titanic_only, kc, args):
    args = [train_option("--folds", "--cv") if a == "FOLDS" else a for a in args]
    line = one_error(kc("train", "titanic", *args, ws=titanic_only))
    assert len(line) < 300
    assert not list(Workspace(titanic_only).runs_dir("titanic").glob("[!.]*"))


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    pytest.param(("titanic", "-m", "knn", "-p", "k=100000"), id="titanic-knn-k-100000"),
    pytest.param(("titanic", "-m", "linear", "-p", "epochs=1"), id="titanic-linear-p-epochs-1"),
    pytest.param(("digit-recognizer", "-m", "knn"), id="digits-knn-defaults"),
])
def test_extreme_but_legal_train_options_train(fetched, kc, args):
    succeeded(kc("train", *args, ws=fetched))
    [run] = Workspace(fetched).runs_dir(args[0]).glob("[!.]*")
    assert json.loads((run / "metrics.json").read_text())["score"] > 0


@pytest.mark.slow
def test_an_ensemble_naming_a_run_twice_is_one_error(trained, kc):
    root, ids = trained
    line = one_error(kc("ensemble", "titanic", ids["knn"], ids["knn"], ws=root))
    assert ids["knn"] in line


@pytest.mark.parametrize("args", [("trian",), ("train", "--bogus"), ("--workspace",), ("validate",),
                                  ("train", "titanic", "--seed", "x"), ("ensemble", "titanic"), ("show", "-n", "0")],
                         ids=lambda a: " ".join(a))
def test_usage_errors_are_one_line(workspace, kc, args):
    result = kc(*args, ws=workspace)
    lines = result.stderr.splitlines()
    assert result.exit_code in (1, 2) and len(lines) == 1 and lines[0].startswith("Error: "), result.stderr


# --- unclear or silent ---------------------------------------------------------------------------------------------


def test_staging_leftovers_are_cleaned_by_the_next_fetch(titanic_only, fixture_zips, kc):
    folder = titanic_only / "competitions/titanic"
    left = folder / f"{sources.STAGING}killed"
    (left / "files").mkdir(parents=True)
    (left / "files/train.csv").write_bytes(b"half a file")
    out = succeeded(kc("fetch", "titanic", "--from", fixture_zips["titanic"], ws=titanic_only))
    assert "already fetched" in out
    assert not left.exists()


@pytest.mark.slow
def test_temporary_run_folders_of_dead_processes_are_cleaned_by_the_next_train(titanic_only, kc):
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        runs = Workspace(titanic_only).runs_dir("titanic")
        left = runs / f".linear.{dead.pid}.x1y2.tmp"
        busy = runs / f".linear.{alive.pid}.a3b4.tmp"
        for folder in (left, busy):
            folder.mkdir(parents=True)
            (folder / "weights.pt").write_bytes(b"half")
        succeeded(kc("train", "titanic", "--model", "knn", ws=titanic_only))
        assert not left.exists()
        assert busy.exists()  # another kc may still be writing it
    finally:
        alive.kill()
        alive.wait()


def test_validating_a_folder_says_it_is_a_directory(titanic_only, tmp_path, kc):
    line = one_error(kc("validate", "titanic", tmp_path, ws=titanic_only))
    assert "is a directory" in line


@pytest.mark.parametrize("content", ['{"username": "kc-test", "key": ', "", "[]", '{"username": 1}', "\xff\xfe"])
def test_a_malformed_kaggle_json_is_named(workspace, kc, content):
    path = kaggle_api._config_file()
    assert not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("latin-1"))
    try:
        line = one_error(kc("fetch", "titanic", ws=workspace))
    finally:
        path.unlink()
    assert str(path) in line
    assert not (workspace / "competitions/titanic").exists()


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["500", "refused"])
def test_a_failing_kaggle_keeps_the_bundled_copy_and_says_so(workspace, kaggle_server, kc, monkeypatch, failure):
    with monkeypatch.context() as m:
        m.delenv("KAGGLE_USERNAME")
        m.delenv("KAGGLE_KEY")  # one without the other is a credential problem, named
        succeeded(kc("fetch", "titanic", ws=workspace))
    folder = workspace / "competitions/titanic"
    assert sources.read_marker(folder)["source"] == "bundled"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    monkeypatch.setattr("time.sleep", lambda s: None)  # the client backs off between retries
    if failure == "500":
        kaggle_server.fail["DownloadDataFiles"] = 500
    else:
        from kagglesdk.kaggle_env import KaggleEnv, _env_to_endpoint

        monkeypatch.setitem(_env_to_endpoint, KaggleEnv.LOCAL, "http://127.0.0.1:9")  # nothing listens there
    result = kc("fetch", "titanic", ws=workspace)
    succeeded(result)
    notes = [line for line in result.stderr.splitlines() if line.startswith("NOTE: ")]
    assert any("kept the bundled copy" in n for n in notes), result.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


# --- bugs in kc itself ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["plain", "multi-line"])
@pytest.mark.parametrize(("target", "args"), [
    ("pipeline.submitting.ledger.validate_file", ("validate", "titanic", "x.csv")),
    ("pipeline.training.records.scan", ("runs", "titanic")),
    ("pipeline.ingest.sources.fetch", ("fetch", "titanic")),
    ("pipeline.training.trainer.train", ("train", "titanic")),
], ids=["validate", "runs", "fetch", "train"])
def test_an_unexpected_exception_is_one_line_with_the_traceback_saved(titanic_only, kc, monkeypatch, target, args,
                                                                       message):
    text = "something broke" if message == "plain" else "something broke\n" + "detail " * 300 + "\nmore"

    def broken(*a, **k):
        raise LookupError(text)

    monkeypatch.setattr(target, broken)
    line = one_error(kc(*args, ws=titanic_only), code=2)
    assert line.startswith("Error: unexpected LookupError: something broke")
    saved = Path(line.rsplit("full traceback in ", 1)[1].rstrip(")"))
    assert saved.is_relative_to(tempfile.gettempdir()) and "in broken" in saved.read_text()
    assert len(line) < 400
