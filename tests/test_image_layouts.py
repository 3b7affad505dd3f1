"""Image-file competitions end to end (fetch -> convert -> train -> submit -> validate), and their bad inputs.

The fixtures in tests/fixtures/layouts/ are drawn by build.py from scikit-learn's bundled photos and digits: cactus is
Aerial Cactus' layout (train.csv with ids that are file names, train.zip and test.zip inside the zip, RGB JPGs),
dogs is Dog Breed's (labels.csv with ids without the extension, train/ and test/ folders, a probability per breed,
grey PNGs), seedlings is Plant Seedlings' (train/<species>/ folders and no labels CSV, RGB PNGs); all at mixed sizes.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_through

from pipeline.core import competitions
from pipeline.core.errors import DataError
from pipeline.core.workspace import Workspace
from pipeline.ingest import imagefiles, sources, unpack

LAYOUTS = Path(__file__).parent / "fixtures" / "layouts"


def zipped(folder: Path, dest: Path) -> Path:
    """A Kaggle-style zip of a fixture folder, sub-folders and nested zips as they are."""
    path = dest / f"{folder.name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(folder).as_posix())
    return path


def copied(name: str, tmp_path: Path) -> Path:
    """A fixture folder copied where a test may change it."""
    return Path(shutil.copytree(LAYOUTS / name, tmp_path / name))


@pytest.mark.slow
def test_ids_that_are_file_names_with_nested_zips_run_knn_end_to_end(kc, workspace, tmp_path):
    result = kc("fetch", "cactus", "--from", zipped(LAYOUTS / "cactus", tmp_path), "--metric", "AUC", ws=workspace)
    assert result.exit_code == 0, result.output
    assert "train.csv, sample_submission.csv, train/, test/" in result.stdout
    assert "inputs: images, files in train/ and test/ named by the id, resized to 32×32 RGB" in result.stdout
    comp = competitions.get("cactus", workspace)
    assert (comp.modality, comp.image_shape, comp.image_channels, comp.image_suffix) == ("images", (32, 32), 3, "")
    folder = workspace / "competitions/cactus"
    assert len(list((folder / "train").glob("*.jpg"))) == 60 and not (folder / "train.zip").exists()

    first = kc("convert", "cactus", ws=workspace)
    assert "converted" in first.stdout and "train (60, 32, 32, 3) uint8" in first.stdout, first.output
    assert "loaded from cache" in kc("convert", "cactus", ws=workspace).stdout
    smaller = kc("convert", "cactus", "--size", "24", ws=workspace)
    assert "converted" in smaller.stdout and "test (20, 24, 24, 3) uint8" in smaller.stdout, smaller.output
    assert competitions.get("cactus", workspace).image_shape == (24, 24)  # kept for train

    out = run_through(kc, workspace, "cactus", "--model", "knn", "--folds", "3")
    sample = pd.read_csv(LAYOUTS / "cactus/sample_submission.csv", dtype=str)
    assert out["id"].tolist() == sample["id"].tolist()
    p = out["has_cactus"].astype(float)
    assert p.between(0, 1).all() and p.nunique() > 2  # probabilities for AUC, not labels
    truth = np.arange(60, 80) % 2  # build.py: image i shows photo i % 2
    assert ((p.to_numpy() > 0.5) == truth).mean() >= 0.8  # the two photos are told apart

    out = run_through(kc, workspace, "cactus", "--model", "cnn", "-p", "epochs=2", "-p", "width=8", "-p", "bs=16",
                      "--folds", "0")  # one model, saved whole
    assert out["has_cactus"].astype(float).between(0, 1).all()
    run = sorted((workspace / "competitions/cactus/runs").glob("*-cnn"))[-1]  # the knn run may share its second
    from pipeline.models.cnn import CNNModel

    model = CNNModel(width=8).load(run)  # rebuilt with three input channels, read from the saved weights
    assert model.predict_proba(np.zeros((2, 24, 24, 3), np.uint8)).shape == (2, 2)


@pytest.mark.slow
def test_ids_without_extension_and_a_probability_per_class_run_end_to_end(kc, workspace, tmp_path):
    result = kc("fetch", "dogs", "--from", zipped(LAYOUTS / "dogs", tmp_path), ws=workspace)
    assert result.exit_code == 0, result.output
    comp = competitions.get("dogs", workspace)
    assert (comp.image_suffix, comp.image_channels, comp.train_file) == (".png", 1, "labels.csv")
    assert comp.writes_proba and comp.proba_columns == ("beagle", "collie", "pug")
    assert comp.image_shape is not None and max(comp.image_shape) <= imagefiles.DEFAULT_SIDE
    out = run_through(kc, workspace, "dogs")  # the default model, knn without deskewing
    proba = out[["beagle", "collie", "pug"]].astype(float).to_numpy()
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-4) and len(out) == 18


@pytest.mark.slow
def test_one_folder_per_class_runs_end_to_end(kc, workspace, tmp_path):
    result = kc("fetch", "seedlings", "--from", zipped(LAYOUTS / "seedlings", tmp_path), ws=workspace)
    assert result.exit_code == 0, result.output
    assert "labels: the class folders train/<class>/, listed by kc in labels-from-folders.csv" in result.stdout
    comp = competitions.get("seedlings", workspace)
    assert comp.classes == ("Black-grass", "Charlock", "Cleavers") and comp.train_file == imagefiles.FOLDER_LABELS
    labels = pd.read_csv(workspace / "competitions/seedlings" / imagefiles.FOLDER_LABELS)
    assert labels["file"].iloc[0].startswith("Black-grass/") and len(labels) == 45
    out = run_through(kc, workspace, "seedlings", "--folds", "3")
    assert list(out.columns) == ["file", "species"] and set(out["species"]) <= set(comp.classes)
    converted = kc("convert", "seedlings", "--images", ws=workspace)
    assert converted.exit_code == 0, converted.output
    from PIL import Image

    png = next((workspace / "competitions/seedlings/derived/png/train/Charlock").glob("*.png"))
    with Image.open(png) as im:
        assert (im.mode, im.size) == ("RGB", (16, 16))  # colour kept, resized to the description's shape


def test_a_folder_source_unpacks_nested_zips_and_a_second_fetch_replaces_the_folders(workspace, tmp_path):
    source = copied("cactus", tmp_path)
    ws = Workspace(workspace)
    sources.fetch("cactus", ws, source)
    folder = workspace / "competitions/cactus"
    (folder / "train" / "stale.jpg").write_bytes(b"left by an old copy")
    sources.fetch("cactus", ws, source, force=True)
    assert not (folder / "train" / "stale.jpg").exists() and len(list((folder / "train").iterdir())) == 60
    assert not list(folder.glob(".fetch-*"))


# ---- bad input, one line each, naming the file ----------------------------------------------------------------


def _dogs(tmp_path: Path) -> tuple[Path, list[str]]:
    source = copied("dogs", tmp_path)
    return source, pd.read_csv(source / "labels.csv", dtype=str)["id"].tolist()


def _fetch_error(source: Path, workspace: Path) -> str:
    with pytest.raises(DataError) as err:
        sources.fetch("dogs", Workspace(workspace), source)
    return str(err.value)


def test_an_unreadable_extra_csv_is_ignored_and_a_sample_with_a_row_index_is_named(workspace, tmp_path):
    source = copied("seedlings", tmp_path)
    (source / "species.csv").write_text("file\tspecies\na.png\tx\n")  # tab-separated: not a CSV kc reads
    sources.fetch("seedlings", Workspace(workspace), source)
    assert competitions.get("seedlings", workspace).extra_files == ("species.csv",)
    sample = pd.read_csv(source / "sample_submission.csv")
    sample.to_csv(source / "sample_submission.csv")  # pandas' index first
    assert _fetch_error(source, workspace).startswith("sample_submission.csv: expected an id column and named value "
                                                      f"columns, got ,{','.join(sample.columns)}")


def test_a_listed_image_that_is_missing_is_named(workspace, tmp_path):
    source, ids = _dogs(tmp_path)
    (source / "train" / f"{ids[2]}.png").unlink()
    assert f"train/{ids[2]}.png: missing, though labels.csv lists it (row 3)" in _fetch_error(source, workspace)


def test_a_corrupt_image_is_named_at_fetch(workspace, tmp_path):
    source, ids = _dogs(tmp_path)
    (source / "train" / f"{ids[0]}.png").write_bytes(b"not a png at all")
    assert f"train/{ids[0]}.png: not an image kc can read" in _fetch_error(source, workspace)


def test_a_cut_image_is_named_at_convert_and_the_cache_is_not_written(workspace, tmp_path):
    from pipeline.pixels import arrays

    source, ids = _dogs(tmp_path)
    comp = sources.fetch("dogs", Workspace(workspace), source).competition
    image = workspace / "competitions/dogs/train" / f"{ids[-1]}.png"
    image.write_bytes(image.read_bytes()[:60])  # the header survives, the pixels do not
    with pytest.raises(DataError) as err:
        arrays.convert(comp, Workspace(workspace))
    assert str(err.value).startswith(f"train/{ids[-1]}.png: not an image kc can read")
    assert not (workspace / "competitions/dogs/derived/arrays.json").exists()


def test_an_image_too_large_is_named(workspace, tmp_path):
    from PIL import Image

    source, ids = _dogs(tmp_path)
    Image.new("L", (competitions.MAX_SIDE + 1, 2)).save(source / "train" / f"{ids[1]}.png")
    message = _fetch_error(source, workspace)
    assert message.startswith(f"train/{ids[1]}.png: {competitions.MAX_SIDE + 1}×2 pixels, more than 4096 a side")


def test_a_test_image_the_sample_does_not_list_is_named(workspace, tmp_path):
    source, ids = _dogs(tmp_path)
    shutil.copy(source / "train" / f"{ids[0]}.png", source / "test" / "0000extra.png")
    message = _fetch_error(source, workspace)
    assert message.startswith("test/0000extra.png: not listed in sample_submission.csv")


def test_a_failed_refetch_keeps_the_previous_images(workspace, tmp_path):
    source, ids = _dogs(tmp_path)
    sources.fetch("dogs", Workspace(workspace), source)
    (source / "train" / f"{ids[0]}.png").unlink()
    with pytest.raises(DataError):
        sources.fetch("dogs", Workspace(workspace), source, force=True)
    assert (workspace / "competitions/dogs/train" / f"{ids[0]}.png").is_file()
    comp = competitions.get("dogs", workspace)
    assert sources.require_fetched(comp, Workspace(workspace))  # still counts as fetched


def _zip_with(tmp_path: Path, extra: dict[str, bytes], link: str | None = None, nested: bool = False) -> Path:
    """The dogs zip plus `extra` entries (inside a nested train.zip when `nested`), and optionally a symlink."""
    path = zipped(LAYOUTS / "dogs", tmp_path)
    with zipfile.ZipFile(path, "a") as zf:
        if nested:
            inner = tmp_path / "train.zip"
            with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z2:
                for name, data in extra.items():
                    z2.writestr(name, data)
            zf.write(inner, "train.zip")
        else:
            for name, data in extra.items():
                zf.writestr(name, data)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (0o120777 << 16)  # a symbolic link, as `zip -y` stores one
            zf.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize(("entries", "link", "nested", "error"), [
    ({"train/../../evil.png": b"x"}, None, False, "refusing unsafe zip entry 'train/../../evil.png'"),
    ({"../evil.png": b"x"}, None, True, "train.zip: refusing unsafe zip entry '../evil.png'"),
    ({}, "train/linked.png", False, "the zip entry 'train/linked.png' is a symbolic link"),
])
def test_unsafe_image_entries_are_refused(workspace, tmp_path, entries, link, nested, error):
    with pytest.raises(DataError) as err:
        sources.fetch("dogs", Workspace(workspace), _zip_with(tmp_path, entries, link, nested))
    assert error in str(err.value)
    assert not (workspace / "competitions/dogs").exists() or not list((workspace / "competitions").rglob("*.png"))


def test_a_symlinked_image_in_a_folder_source_is_refused(workspace, tmp_path):
    source, ids = _dogs(tmp_path)
    (source / "train" / f"{ids[0]}.png").unlink()
    os.symlink("/etc/hostname", source / "train" / f"{ids[0]}.png")
    assert "a symbolic link" in _fetch_error(source, workspace)


def test_image_counts_are_bounded(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(imagefiles, "MAX_IMAGES", 50)
    with pytest.raises(DataError) as err:
        sources.fetch("dogs", Workspace(workspace), zipped(LAYOUTS / "dogs", tmp_path))
    assert "75 images, more than the 50 kc takes from one source" in str(err.value)


def test_a_nested_zip_bomb_is_refused(workspace, tmp_path, monkeypatch):
    big = {f"train/{i}.png": bytes(200_000) for i in range(3)}  # zeros: compress far better than images do
    path = _zip_with(tmp_path, big, nested=True)
    monkeypatch.setattr(unpack, "MAX_RATIO", 50)
    with pytest.raises(DataError) as err:
        sources.fetch("dogs", Workspace(workspace), path)
    assert "train.zip: the zip claims to unpack" in str(err.value) and "zip bomb" in str(err.value)


@pytest.mark.parametrize(("change", "error"), [
    ({"image_channels": 2}, "image_channels must be 1 or 3"),
    ({"image_folders": ["train", "../x"]}, "image_folders must be"),
    ({"image_suffix": "/../x"}, "image_suffix must be empty or a file extension"),
    ({"modality": "tabular", "image_shape": None, "features": "generic"}, "are for the images modality"),
])
def test_hand_edits_of_the_image_fields_are_validated(workspace, tmp_path, change, error):
    source, _ = _dogs(tmp_path)
    sources.fetch("dogs", Workspace(workspace), source)
    path = workspace / "competitions/dogs/competition.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    with pytest.raises(DataError) as err:
        competitions.get("dogs", workspace)
    assert error in str(err.value)


def test_a_description_written_before_image_files_still_loads(workspace):
    data = competitions.DIGIT_RECOGNIZER.to_json() | {"slug": "old"}
    for name in ("image_folders", "image_suffix", "image_channels"):
        data.pop(name)
    (workspace / "competitions/old").mkdir(parents=True)
    (workspace / "competitions/old/competition.json").write_text(json.dumps(data))
    assert competitions.get("old", workspace).image_channels == 1
