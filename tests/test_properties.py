"""Properties: whatever bytes or edited CSVs kc is handed, convert, validate and fetch end in a value or a KcError.

Each example runs in a fresh temporary workspace copied from one fetched once per module. Examples are
derandomized, so a failure here fails the same way on every run.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, install
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.core import competitions, dataset
from pipeline.core.errors import KcError
from pipeline.core.workspace import Workspace
from pipeline.ingest import sources
from pipeline.pixels.arrays import PixelArrays
from pipeline.submitting.checks import validate_file

HOUSES = "house-prices-advanced-regression-techniques"
SLUGS = ("titanic", "digit-recognizer", HOUSES)
EXAMPLES = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A workspace with the three fixture competitions fetched; each example works on a copy."""
    root = tmp_path_factory.mktemp("template") / "ws"
    root.mkdir()
    for slug in SLUGS:
        install(root, slug)
    return root


@contextmanager
def fresh(template: Path, slug: str, files: dict[str, bytes]) -> Iterator[Workspace]:
    """A temporary workspace holding `slug` as fetched, with `files` written over the fetched ones."""
    with tempfile.TemporaryDirectory(prefix="kc-prop-") as tmp:
        root = Path(tmp) / "ws"
        shutil.copytree(template / "competitions" / slug, root / "competitions" / slug)
        for name, data in files.items():
            (root / "competitions" / slug / name).write_bytes(data)
        yield Workspace(root)


# --- edits of a CSV -------------------------------------------------------------------------------------------------

ODD_CELLS = ["", " ", "nan", "NaN", "NA", "-1", "256", "1e309", "inf", "-inf", "0x10", "1.5", "²", "٣", "１", '"',
             '"a,b"', "\n", "\r", "\x00", "True", "99999999999999999999", "male", "S", "-0", "\ufeff", "é"]
cell_text = st.one_of(st.sampled_from(ODD_CELLS), st.text(max_size=12))
index = st.integers(0, 10**6)
edit = st.one_of(
    st.tuples(st.just("cell"), index, index, cell_text),
    st.tuples(st.just("drop-row"), index),
    st.tuples(st.just("copy-row"), index),
    st.tuples(st.just("header"), index, cell_text),
    st.tuples(st.just("drop-column"), index),
    st.tuples(st.just("swap-columns"), index, index),
    st.tuples(st.just("truncate"), index),
)


def edited(data: bytes, edits: list[tuple]) -> bytes:
    """The CSV with the edits applied in turn (cells are found by splitting at commas, quotes or not)."""
    lines = data.decode("utf-8").split("\n")
    for kind, *args in edits:
        rows = [i for i in range(1, len(lines)) if lines[i]]
        if kind == "cell" and rows:
            r = rows[args[0] % len(rows)]
            cells = lines[r].split(",")
            cells[args[1] % len(cells)] = args[2]
            lines[r] = ",".join(cells)
        elif kind == "drop-row" and rows:
            del lines[rows[args[0] % len(rows)]]
        elif kind == "copy-row" and rows:
            r = rows[args[0] % len(rows)]
            lines.insert(r, lines[r])
        elif kind == "header":
            cells = lines[0].split(",")
            cells[args[0] % len(cells)] = args[1]
            lines[0] = ",".join(cells)
        elif kind in ("drop-column", "swap-columns"):
            width = len(lines[0].split(","))
            for i, line in enumerate(lines):
                cells = line.split(",")
                if len(cells) != width:
                    continue
                a = args[0] % width
                if kind == "drop-column":
                    del cells[a]
                else:
                    b = args[1] % width
                    cells[a], cells[b] = cells[b], cells[a]
                lines[i] = ",".join(cells)
        elif kind == "truncate":
            text = "\n".join(lines)
            lines = text[: args[0] % (len(text) + 1)].split("\n")
    return "\n".join(lines).encode("utf-8")


def file_edits(slug: str) -> st.SearchStrategy[dict[str, list[tuple]]]:
    """Edits for one or more of the competition's CSVs."""
    names = [n for n in competitions.get(slug).files if n.endswith(".csv")]
    return st.dictionaries(st.sampled_from(names), st.lists(edit, min_size=1, max_size=4), min_size=1)


def fixture(slug: str, name: str) -> bytes:
    return (FIXTURES / slug / name).read_bytes()


# --- convert --------------------------------------------------------------------------------------------------------


def converted(slug: str, ws: Workspace) -> object | None:
    """What convert returns, checked for sense; None when it refused with a KcError."""
    comp = competitions.get(slug)
    try:
        result = dataset.convert(comp, ws, force=True)
    except KcError:
        return None
    if isinstance(result, PixelArrays):
        assert result.train_images.ndim == 3 and result.train_images.dtype == np.uint8
        assert len(result.train_labels) == len(result.train_images) and result.test_images.ndim == 3
        assert ((result.train_labels >= 0) & (result.train_labels < len(comp.classes))).all()
    else:
        assert len(result.X) == len(result.y) and len(result.X_test) == len(result.test_ids)
        assert result.X.shape[1] == result.X_test.shape[1]
        assert np.isfinite(result.X).all() and np.isfinite(result.X_test).all(), "non-finite features"
    return result


def convert_edited(template: Path, slug: str, edits: dict[str, list[tuple]]) -> None:
    files = {name: edited(fixture(slug, name), e) for name, e in edits.items()}
    with fresh(template, slug, files) as ws:
        converted(slug, ws)


@pytest.mark.slow
@EXAMPLES
@given(edits=file_edits("digit-recognizer"))
@example(edits={"train.csv": [("header", 0, "")]})
@example(edits={"test.csv": [("header", 5, "a\rb")]})
def test_convert_pixels_ends_in_arrays_or_a_kc_error(template, edits):
    convert_edited(template, "digit-recognizer", edits)


@pytest.mark.slow
@EXAMPLES
@given(edits=file_edits("titanic"))
def test_convert_titanic_tables_ends_in_features_or_a_kc_error(template, edits):
    convert_edited(template, "titanic", edits)


@pytest.mark.slow
@EXAMPLES
@given(edits=file_edits(HOUSES))
@example(edits={"train.csv": [("truncate", 1)]})
def test_convert_generic_tables_ends_in_features_or_a_kc_error(template, edits):
    convert_edited(template, HOUSES, edits)


@pytest.mark.parametrize("slug", ["titanic", "digit-recognizer", HOUSES])
@EXAMPLES
@given(data=st.data())
def test_convert_of_random_bytes_ends_in_a_kc_error(template, slug, data):
    names = [n for n in competitions.get(slug).files if n.endswith(".csv")]
    files = data.draw(st.dictionaries(st.sampled_from(names), st.binary(max_size=3000), min_size=1))
    with fresh(template, slug, files) as ws:
        converted(slug, ws)


# --- validate -------------------------------------------------------------------------------------------------------


def validated(slug: str, ws: Workspace, content: bytes) -> None:
    comp = competitions.get(slug)
    path = ws.root / "submission.csv"
    path.write_bytes(content)
    try:
        rows = validate_file(comp, ws, path)
    except KcError:
        return
    want = len((FIXTURES / slug / comp.sample_file).read_text().splitlines()) - 1
    assert rows == want, "a submission with other rows than the sample's passed"


@pytest.mark.parametrize("slug", SLUGS)
@EXAMPLES
@given(data=st.data())
def test_validate_of_an_edited_sample_ends_in_a_row_count_or_a_kc_error(template, slug, data):
    comp = competitions.get(slug)
    edits = data.draw(st.lists(edit, min_size=1, max_size=4))
    with fresh(template, slug, {}) as ws:
        validated(slug, ws, edited(fixture(slug, comp.sample_file), edits))


@EXAMPLES
@given(content=st.one_of(st.binary(max_size=3000),
                         st.binary(max_size=300).map(lambda b: b"PassengerId,Survived\n892," + b)))
def test_validate_of_random_bytes_ends_in_a_kc_error(template, content):
    with fresh(template, "titanic", {}) as ws:
        validated("titanic", ws, content)


# --- fetch ----------------------------------------------------------------------------------------------------------


def fetched_or_refused(slug: str, source: Path, root: Path) -> sources.FetchResult | None:
    try:
        return sources.fetch(slug, Workspace(root), source)
    except KcError:
        return None


@EXAMPLES
@given(content=st.one_of(st.binary(max_size=2000), st.binary(max_size=2000).map(lambda b: b"PK\x03\x04" + b)))
def test_fetch_of_random_bytes_as_a_zip_ends_in_a_kc_error(content):
    with tempfile.TemporaryDirectory(prefix="kc-prop-") as tmp:
        source = Path(tmp) / "titanic.zip"
        source.write_bytes(content)
        assert fetched_or_refused("titanic", source, Path(tmp) / "ws") is None


@EXAMPLES
@given(flips=st.lists(st.tuples(index, st.integers(1, 255)), min_size=1, max_size=4))
def test_fetch_of_a_damaged_zip_installs_the_exact_files_or_refuses(flips):
    original = {p.name: p.read_bytes() for p in (FIXTURES / "titanic").iterdir()}
    with tempfile.TemporaryDirectory(prefix="kc-prop-") as tmp:
        good = Path(tmp) / "good.zip"
        with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, content in original.items():
                zf.writestr(name, content)
        data = bytearray(good.read_bytes())
        for at, mask in flips:
            data[at % len(data)] ^= mask
        source = Path(tmp) / "titanic.zip"
        source.write_bytes(bytes(data))
        result = fetched_or_refused("titanic", source, Path(tmp) / "ws")
        if result is not None:
            assert {n: (result.folder / n).read_bytes() for n in original} == original


def fetch_edited(slug: str, edits: dict[str, list[tuple]]) -> None:
    """Fetch a zip of Titanic's files with `edits`; what fetch accepts, convert must take or refuse too."""
    files = {p.name: p.read_bytes() for p in (FIXTURES / "titanic").iterdir()}
    files |= {name: edited(files[name], e) for name, e in edits.items()}
    with tempfile.TemporaryDirectory(prefix="kc-prop-") as tmp:
        source = Path(tmp) / "data.zip"
        with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, content in files.items():
                zf.writestr(name, content)
        root = Path(tmp) / "ws"
        result = fetched_or_refused(slug, source, root)
        if result is not None:
            with suppress(KcError):
                dataset.convert(competitions.get(result.competition.slug, root), Workspace(root))


@pytest.mark.slow
@EXAMPLES
@given(edits=file_edits("titanic"))
@example(edits={"train.csv": [("swap-columns", 0, 2)]})
@example(edits={"train.csv": [("swap-columns", 0, 11)]})
def test_fetch_of_a_zip_of_edited_csvs_ends_in_data_or_a_kc_error(edits):
    fetch_edited("titanic", edits)


@pytest.mark.slow
@EXAMPLES
@given(edits=file_edits("titanic"))
@example(edits={"gender_submission.csv": [("header", 0, "")]})
def test_fetch_of_an_unknown_competition_ends_in_data_or_a_kc_error(edits):
    fetch_edited("my-new-competition", edits)


# --- any JSON in kc's own files: a value, a damaged marker, or a KcError ----------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
FAST = settings(EXAMPLES, max_examples=150)


def edited_json(base: dict, data: st.DataObject) -> object:
    """`base` with one field set to any JSON value, or any JSON at all."""
    if data.draw(st.booleans()):
        return data.draw(JSON)
    key = data.draw(st.sampled_from(sorted(base)))
    return {**base, key: data.draw(JSON | st.integers(-10**12, 10**12) | st.just(10**9))}


def within(seconds: float, call) -> object:
    """`call()`, failing the example if it takes longer than `seconds` (a hang is a failure too)."""
    import time

    start = time.monotonic()
    value = call()
    assert time.monotonic() - start < seconds
    return value


@pytest.mark.slow
@FAST
@given(data=st.data())
def test_any_competition_json_is_a_description_or_a_kc_error(data):
    base = competitions.TITANIC.to_json()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "competitions/titanic/competition.json"
        path.parent.mkdir(parents=True)
        path.write_text(__import__("json").dumps(edited_json(base, data)))
        with suppress(KcError):
            comp = within(10, lambda: competitions.load(path))
            assert len(comp.pixel_columns) <= competitions.MAX_PIXELS and len(comp.classes) <= competitions.MAX_CLASSES
            assert all("/" not in name and not name.startswith(".") for name in comp.files)


@pytest.mark.slow
@FAST
@given(data=st.data(), name=st.sampled_from(["config.json", "metrics.json"]))
def test_any_run_json_is_a_run_or_damaged(data, name):
    import json

    from pipeline.training import records

    good = {"config.json": {"model": "knn", "params": {}, "competition": "titanic"},
            "metrics.json": {"metric": "accuracy", "score": 0.8, "valid_rows": 10, "train_rows": 90,
                             "fit_seconds": 0.1, "predict_seconds": 0.1, "fold_scores": [0.8, 0.7],
                             "submits_with": "fold-mean", "scored_on": "oof",
                             "history": [{"epoch": 1, "train_loss": 0.5}]}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "20000101-000000-knn"
        folder.mkdir()
        for f, content in good.items():
            (folder / f).write_text(json.dumps(edited_json(content, data) if f == name else content))
        with suppress(KcError):
            run = within(10, lambda: records.read_run(folder))
            assert isinstance(run.score, float | int) and np.isfinite(run.score)
            assert run.metrics.submits_with != "fold-mean" or len(run.metrics.fold_scores) >= 2
            assert isinstance(run.metrics.valid_rows, int) and isinstance(run.config.params, dict)


@FAST
@given(data=st.data())
def test_any_log_line_is_an_entry_or_unreadable(data):
    import json

    from pipeline.submitting.ledger import LogEntry

    base = {"time": "t", "file": "a.csv", "sha256": "s", "run": "r", "model": "m", "valid_score": 0.5,
            "upload_ref": 1000, "status": "PENDING"}
    entry = within(10, lambda: LogEntry.from_line(json.dumps(edited_json(base, data))))
    if entry is not None:
        assert isinstance(entry.file, str) and isinstance(entry.status, str)
        assert entry.valid_score is None or (isinstance(entry.valid_score, float | int) and
                                             np.isfinite(entry.valid_score))
        assert entry.upload_ref is None or type(entry.upload_ref) is int


def test_deep_json_in_a_log_line_is_unreadable():
    from pipeline.submitting.ledger import LogEntry

    assert LogEntry.from_line("[" * 200_000 + "]" * 200_000) is None
