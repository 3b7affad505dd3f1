import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from pipeline.core import competitions, dataset
from pipeline.core.errors import DataError
from pipeline.core.workspace import Workspace
from pipeline.handwriting import load_grey, nearest_rows, predict_images, prepare
from pipeline.training import records, splits, trainer

DIGITS = competitions.get("digit-recognizer")


def font_digit(text: str, size=(600, 800), ink=40, paper=200, at=(120, 150), noise=12, seed=0) -> Image.Image:
    """A font digit written dark on light paper, off-centre, with paper noise and a soft shadow."""
    rng = np.random.default_rng(seed)
    w, h = size
    shade = np.linspace(0, 50, w)[None, :].repeat(h, 0)  # light falling off to the right
    base = np.clip(paper - shade + rng.normal(0, noise, (h, w)), 0, 255).astype(np.uint8)
    image = Image.fromarray(base, "L")
    ImageDraw.Draw(image).text(at, text, fill=ink, font=ImageFont.load_default(size=300))
    return image


def test_dark_on_light_photo_is_prepared_like_mnist(tmp_path):
    path = tmp_path / "seven.png"
    font_digit("7").save(path)
    digit = prepare(load_grey(path))
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert digit.max() == 255 and digit.min() == 0
    assert np.mean(digit == 0) > 0.6  # paper became background
    cy, cx = ndimage.center_of_mass(digit.astype(float))
    assert abs(cy - 13.5) < 1 and abs(cx - 13.5) < 1
    rows, cols = np.flatnonzero(digit.max(1) > 40), np.flatnonzero(digit.max(0) > 40)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in range(17, 23)  # longer side about 20 px


def test_light_on_dark_and_colour_images(tmp_path):
    white_on_black = Image.new("RGB", (300, 300), (0, 0, 0))
    ImageDraw.Draw(white_on_black).text((40, 10), "3", fill=(255, 255, 255), font=ImageFont.load_default(size=250))
    path = tmp_path / "three.jpg"
    white_on_black.save(path, quality=90)
    digit = prepare(load_grey(path))
    assert digit.shape == (28, 28) and digit[0].max() < 30 and digit.max() == 255
    blue_ink = Image.new("RGBA", (400, 300), (0, 0, 0, 0))  # transparent background, blue ink
    ImageDraw.Draw(blue_ink).text((100, 0), "5", fill=(20, 40, 200, 255), font=ImageFont.load_default(size=250))
    path = tmp_path / "five.png"
    blue_ink.save(path)
    digit = prepare(load_grey(path))
    assert digit.max() == 255 and np.mean(digit == 0) > 0.5


def test_blank_image_is_refused(tmp_path):
    path = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300), 230, np.uint8)).save(path)
    with pytest.raises(DataError, match="no ink found: the image is blank"):
        prepare(load_grey(path))


def test_not_an_image_and_too_large(tmp_path, monkeypatch):
    path = tmp_path / "notes.png"
    path.write_text("this is text")
    with pytest.raises(DataError, match="notes.png: not an image kc can read"):
        load_grey(path)
    big = tmp_path / "big.png"
    Image.new("L", (3000, 2000), 255).save(big)
    monkeypatch.setattr("pipeline.handwriting.MAX_PIXELS", 5_000_000)
    with pytest.raises(DataError, match=r"big.png: image is too large \(3000×2000 pixels; at most 5 megapixels\)"):
        load_grey(big)


@pytest.fixture
def knn_run(fetched):
    ws = Workspace(fetched)
    run = trainer.train(DIGITS, ws, records.TrainConfig(model="knn", params={"pca": 0}, valid_pct=0.1))
    return fetched, run


@pytest.mark.slow
def test_a_real_digit_upscaled_inverted_and_saved_as_jpeg_is_recognised(knn_run, tmp_path):
    fetched, _ = knn_run
    data = dataset.load_dataset(DIGITS, Workspace(fetched))
    _, valid_idx = splits.split(data.y, 0.1, 0)
    hits = 0
    for row in valid_idx[:10]:  # digits the model never saw
        photo = Image.fromarray(255 - data.X[row]).resize((280, 280), Image.Resampling.BICUBIC)
        path = tmp_path / f"digit{row}.jpg"
        photo.save(path, quality=85)
        [result] = predict_images(DIGITS, Workspace(fetched), [path])
        hits += result.top[0][0] == data.y[row]
        assert result.picture.is_file() and result.picture.name == f"digit{row}.kc.png"
        assert len(result.neighbours) == 3 and all(data.y[r] == label for r, label in result.neighbours)
    assert hits >= 8


@pytest.mark.slow
def test_cli_predict_image(knn_run, tmp_path, kc):
    fetched, _ = knn_run
    path = tmp_path / "seven.png"
    font_digit("7").save(path)
    result = kc("predict-image", path, "--out", tmp_path / "out.png", ws=fetched)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{path}: ") and (tmp_path / "out.png").is_file()
    assert result.stdout.count("%") == 3


def test_cli_predict_image_errors(fetched, tmp_path, kc):
    path = tmp_path / "seven.png"
    font_digit("7").save(path)
    result = kc("predict-image", path, ws=fetched)
    assert result.exit_code == 1
    assert result.stderr == "Error: no runs for digit-recognizer yet: run `kc train digit-recognizer` first\n"
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    result = kc("predict-image", blank, ws=fetched)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {blank}: no ink found: the image is blank\n"


@pytest.mark.parametrize("how", [{}, {"full": True}, {"folds": 3}], ids=["split", "full", "folds"])
def test_drawn_nearest_digit_of_a_training_image_is_that_image(fetched, how):
    ws = Workspace(fetched)
    run = trainer.train(DIGITS, ws, records.TrainConfig(model="knn", params={"pca": 0}, **how))
    data = dataset.load_dataset(DIGITS, ws)
    [fitted_on] = records.load_train_rows(run, len(data.y))[:1]
    n = len(data.y)
    assert len(fitted_on) == (n if how.get("full") else n - n // 3 if how.get("folds") else n - run.metrics.valid_rows)
    model = records.load_model(DIGITS, run)
    seen = fitted_on[:: len(fitted_on) // 8][:8]  # images the model was fitted on
    drawn = nearest_rows(model, run, data.X, data.y, data.X[seen])[:, 0]
    distance = np.abs(data.X[drawn].astype(int) - data.X[seen].astype(int)).sum(axis=(1, 2))
    assert distance.tolist() == [0] * len(seen)
