"""Kaggle's layouts, each run end to end (fetch -> train -> submit -> validate) from a small replica of real data.

The replicas in tests/fixtures/layouts/ are cut from real tables (build.py says from which): Bike-Sharing-like dates
and train-only columns (weather), text classes (penguins), one probability column per class (otto), a binary target
scored by AUC from one probability column (santander), and a pixel competition whose ids are in test only (kannada).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_through

from pipeline.core import competitions
from pipeline.core.errors import DataError, SubmissionError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.ingest import describe

LAYOUTS = Path(__file__).parent / "fixtures" / "layouts"


def fetch(kc, ws: Path, name: str, *extra: str, source: Path | None = None) -> competitions.Competition:
    """`kc fetch NAME --from FOLDER` and the description it wrote."""
    result = kc("fetch", name, "--from", source or LAYOUTS / name, *extra, ws=ws)
    assert result.exit_code == 0, result.output
    return competitions.get(name, ws)


@pytest.mark.slow
def test_dates_and_train_only_columns(kc, workspace):
    comp = fetch(kc, workspace, "weather", "--metric", "Root Mean Squared Logarithmic Error")
    assert (comp.metric, comp.metric_source) == ("rmsle", "--metric")
    assert comp.dropped_columns == ("temp_min",) and comp.date_columns == ("datetime",)
    assert comp.id_type == "str"  # date-time ids are text, written back exactly as the sample has them
    out = run_through(kc, workspace, "weather", "--model", "sk-ridge")
    sample = pd.read_csv(LAYOUTS / "weather/sampleSubmission.csv", dtype=str)
    assert out["datetime"].tolist() == sample["datetime"].tolist()
    assert (out["temp_max"].astype(float) >= 0).all()
    run = next((workspace / "competitions/weather/runs").iterdir())
    features = json.loads((run / "features.json").read_text()) if (run / "features.json").exists() else \
        json.loads((run / "config.json").read_text())
    text = json.dumps(features)
    assert "datetime_dayofyear" in text or "datetime" in text
    assert "temp_min" not in text  # a train-only column never becomes a feature


@pytest.mark.slow
def test_text_classes_are_written_back_exactly(kc, workspace):
    comp = fetch(kc, workspace, "penguins")
    assert comp.labels == "str" and comp.classes[0] == "Adelie Penguin (Pygoscelis adeliae)"
    assert comp.extra_files == ("data_description.txt", "extra.parquet")
    assert comp.date_columns == ("Date Egg",)
    out = run_through(kc, workspace, "penguins", "--model", "sk-logistic")
    assert set(out["Species"]) <= set(comp.classes) and len(out) == 104


@pytest.mark.slow
def test_one_probability_column_per_class(kc, workspace):
    comp = fetch(kc, workspace, "otto")
    assert comp.writes_proba and comp.metric == "log-loss" and comp.proba_columns[0] == "Class_1"
    assert comp.classes == tuple(f"Class_{k}" for k in range(1, 10))  # Class_2 before Class_10-style names
    out = run_through(kc, workspace, "otto", "--model", "sk-logistic")
    assert list(out.columns) == ["id", *comp.proba_columns]
    proba = out[list(comp.proba_columns)].astype(float).to_numpy()
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-4) and proba.min() > 0 and proba.max() < 1


@pytest.mark.slow
def test_binary_probabilities_for_auc(kc, workspace):
    comp = fetch(kc, workspace, "santander", "--metric", "AUC")
    assert (comp.metric, comp.writes_proba, comp.id_type) == ("roc-auc", True, "str")
    out = run_through(kc, workspace, "santander", "--model", "sk-logistic")
    assert list(out.columns) == ["ID_code", "target"] and out["ID_code"].iloc[0] == "test_0"
    p = out["target"].astype(float)
    assert p.between(0, 1).all() and p.nunique() > 10  # probabilities, not 0/1 labels


@pytest.mark.slow
def test_pixels_with_ids_in_test_only_and_an_extra_labelled_csv(kc, workspace):
    comp = fetch(kc, workspace, "kannada")
    assert comp.modality == "pixels" and not comp.id_in_train and comp.extra_files == ("Dig-MNIST.csv",)
    out = run_through(kc, workspace, "kannada", "--model", "knn")
    assert out["id"].tolist() == [str(i) for i in range(40)]


def test_repeated_ids_in_train_do_not_break_a_split(kc, workspace, tmp_path):
    source = tmp_path / "penguins"
    shutil.copytree(LAYOUTS / "penguins", source)
    train = pd.read_csv(source / "train.csv")
    train["id"] = train["id"] // 3  # several rows per entity, as in a time series
    train.to_csv(source / "train.csv", index=False)
    fetch(kc, workspace, "penguins", source=source)
    trained = kc("train", "penguins", "--model", "sk-logistic", "--folds", "3", ws=workspace)
    assert trained.exit_code == 0, trained.output


# ---- bad input, one line each ----------------------------------------------------------------------------------


def _otto_submission(ws: Path, change) -> Path:
    sample = pd.read_csv(LAYOUTS / "otto/sampleSubmission.csv")
    sample = sample.astype({c: float for c in sample.columns[1:]})
    sample.iloc[:, 1:] = 1 / 9
    change(sample)
    path = ws / "mine.csv"
    sample.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("change", "error"), [
    (lambda s: s.__setitem__("Class_3", 1.5), "row 1: Class_3 '1.5' is not a probability (a number from 0 to 1)"),
    (lambda s: s.__setitem__("Class_3", -0.1), "row 1: Class_3 '-0.1' is not a probability"),
    (lambda s: s.__setitem__("Class_3", 0.5), "row 1: the probabilities of Class_1, Class_2"),
    (lambda s: s.drop(columns=["Class_9"], inplace=True), "columns must be id,Class_1"),
])
def test_bad_probability_submissions_are_named(workspace, change, error):
    from pipeline.submitting.checks import validate_file

    comp = competitions.get("otto", workspace) if (workspace / "competitions/otto").exists() else None
    if comp is None:
        from pipeline.ingest.sources import fetch as do_fetch

        comp = do_fetch("otto", Workspace(workspace), LAYOUTS / "otto").competition
    with pytest.raises(SubmissionError) as err:
        validate_file(comp, Workspace(workspace), _otto_submission(workspace, change))
    assert error in str(err.value)


def test_a_class_not_in_train_is_refused(kc, workspace, tmp_path):
    fetch(kc, workspace, "penguins")
    bad = pd.read_csv(LAYOUTS / "penguins/sample_submission.csv")
    bad.loc[3, "Species"] = "Emperor penguin"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    result = kc("validate", "penguins", str(tmp_path / "bad.csv"), ws=workspace)
    assert result.exit_code == 1
    assert "row 4: Species 'Emperor penguin' is not one of Adelie Penguin" in result.stderr


def test_a_sample_class_column_missing_from_train_is_refused(tmp_path):
    folder = tmp_path / "otto"
    shutil.copytree(LAYOUTS / "otto", folder)
    sample = pd.read_csv(folder / "sampleSubmission.csv").rename(columns={"Class_9": "Class_10"})
    sample.to_csv(folder / "sampleSubmission.csv", index=False)
    with pytest.raises(DataError) as err:
        describe.infer("otto", folder)
    assert "its class columns and the classes of train.csv's 'target' differ" in str(err.value)


def test_several_target_columns_are_targets_not_train_only_columns(tmp_path):
    folder = tmp_path / "two"  # tests/test_layouts_targets.py runs several targets end to end
    shutil.copytree(LAYOUTS / "weather", folder)
    sample = pd.read_csv(folder / "sampleSubmission.csv").assign(temp_min=0)
    sample.to_csv(folder / "sampleSubmission.csv", index=False)
    comp = describe.infer("two", folder)
    assert (comp.targets, comp.dropped_columns, comp.metric) == (("temp_max", "temp_min"), (), "mean-rmse")


def test_a_label_metric_for_a_probability_sample_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as err:
        describe.infer("otto", LAYOUTS / "otto", "accuracy")
    assert "use log-loss" in str(err.value)


def test_a_test_file_holding_the_class_column_of_a_probability_sample_is_told_so(tmp_path):
    folder = tmp_path / "otto"
    shutil.copytree(LAYOUTS / "otto", folder)
    test = pd.read_csv(folder / "test.csv")
    labels = pd.read_csv(folder / "train.csv")["target"]
    test.assign(target=labels[:len(test)].to_numpy()).to_csv(folder / "test.csv", index=False)
    with pytest.raises(DataError) as err:  # it said the sample's columns were neither classes nor train columns
        describe.infer("otto", folder)
    assert str(err.value) == ("test.csv: it holds the target 'target', which a test set leaves for the model to "
                              "predict: remove that column from test.csv")


def test_unparseable_dates_are_missing_values_not_categories():
    from pipeline.tables.encoder import TableEncoder

    when = [str(pd.Timestamp("2011-01-01") + pd.Timedelta(hours=7 * i)) for i in range(40)] + ["soon", None]
    encoder = TableEncoder().fit(pd.DataFrame({"when": when, "x": range(42)}))
    names = encoder.names(scaled=False)
    assert "when_hour" in names and "when_missing" in names and not any("=" in n for n in names)
    X = encoder.transform(pd.DataFrame({"when": ["2011-01-02 05:00:00", "garbage"], "x": [1, 2]}), scaled=False)
    assert X[0, names.index("when_hour")] == 5 and X[1, names.index("when_missing")] == 1
    assert X[0, names.index("when_day")] == 2


def _zip_of(folder: Path, dest: Path) -> bytes:
    import zipfile

    path = dest / f"{folder.name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(folder.iterdir()):
            zf.write(file, file.name)
    return path.read_bytes()


@pytest.mark.parametrize(("kaggle_says", "metric", "source"), [
    ("MulticlassLoss", "log-loss", "Kaggle API"),
    ("Quadratic Weighted Kappa", "qwk", "Kaggle API"),
    ("Some Metric kc Lacks", "log-loss", "default"),  # never an error: the default, said as such
    ("", "log-loss", "default"),
])
def test_the_metric_comes_from_the_kaggle_api(kc, workspace, tmp_path, kaggle_server, kaggle_says, metric, source):
    kaggle_server.zips["otto"] = _zip_of(LAYOUTS / "otto", tmp_path)
    kaggle_server.metrics["otto"] = kaggle_says
    if metric == "qwk":  # a label metric for a probability sample falls back too
        metric, source = "log-loss", "default"
    result = kc("fetch", "otto", ws=workspace)
    assert result.exit_code == 0, result.output
    comp = competitions.get("otto", workspace)
    assert (comp.metric, comp.metric_source) == (metric, source)
    assert f"metric: {metric} ({source})" in result.stdout
    assert "GetCompetition" in kaggle_server.calls


def test_the_kaggle_api_metric_is_used_for_labels(kc, workspace, tmp_path, kaggle_server):
    kaggle_server.zips["penguins"] = _zip_of(LAYOUTS / "penguins", tmp_path)
    kaggle_server.metrics["penguins"] = "Macro F1"
    assert kc("fetch", "penguins", ws=workspace).exit_code == 0
    comp = competitions.get("penguins", workspace)
    assert (comp.metric, comp.metric_source) == ("f1-macro", "Kaggle API")


def test_text_ids_are_kept_as_written(kc, workspace, tmp_path):
    source = tmp_path / "padded"
    source.mkdir()
    rows = "".join(f"{i:04d},{i % 7}.5,{i % 2}\n" for i in range(1, 41))
    (source / "train.csv").write_text("id,x,y\n" + rows)
    (source / "test.csv").write_text("id,x\n0061,1\nNA,2\nnull,3\n")
    (source / "sample_submission.csv").write_text("id,y\n0061,0\nNA,0\nnull,0\n")
    fetch(kc, workspace, "padded", source=source)
    out = run_through(kc, workspace, "padded", "--model", "sk-logistic")
    assert out["id"].tolist() == ["0061", "NA", "null"]  # zeros kept; NA and null are ids here, not gaps


def test_the_encoder_takes_the_described_date_columns(kc, workspace):
    from pipeline.core.workspace import Workspace
    from pipeline.tables import frames

    comp = fetch(kc, workspace, "penguins")
    ws = Workspace(workspace)
    assert frames.load(comp, ws).features["report"]["date"] == ["Date Egg"]
    path = workspace / "competitions" / "penguins" / "competition.json"
    described = json.loads(path.read_text())
    path.write_text(json.dumps({**described, "date_columns": []}))  # a hand edit: no dates after all
    edited = competitions.get("penguins", workspace)
    assert frames.load(edited, ws).features["report"]["date"] == []
    assert frames.fingerprint(edited, path.parent, "generic") != frames.fingerprint(comp, path.parent, "generic")


# ---- wide pixel CSVs whose columns are not pixel0 … -------------------------------------------------------------


def _renamed_kannada(tmp_path: Path, name, keep: int = 784) -> Path:
    """Kannada's files with the pixel columns renamed by `name(i)` (and only the first `keep` of them)."""
    source = tmp_path / "wide"
    source.mkdir()
    for file in ("train.csv", "test.csv", "sample_submission.csv"):
        df = pd.read_csv(LAYOUTS / "kannada" / file)
        pixels = [c for c in df.columns if c.startswith("pixel")]
        df = df.drop(columns=pixels[keep:]).rename(columns={c: name(i) for i, c in enumerate(pixels[:keep])})
        df.to_csv(source / file, index=False)
    return source


NAMINGS = {
    "1x1 … 28x28": lambda i: f"{i // 28 + 1}x{i % 28 + 1}",  # MNIST in CSV: row x column, from 1
    "0 … 783": str,
    "pixel1 … pixel784": lambda i: f"pixel{i + 1}",  # Fashion-MNIST's CSVs
}


@pytest.mark.parametrize("naming", list(NAMINGS))
def test_wide_pixel_columns_named_as_a_grid_are_pixels(tmp_path, naming):
    comp = describe.infer("wide", _renamed_kannada(tmp_path, NAMINGS[naming]))
    assert (comp.modality, comp.image_shape, comp.default_model) == ("pixels", (28, 28), "knn")


def test_numbered_columns_of_measurements_stay_a_table(tmp_path):
    source = _renamed_kannada(tmp_path, str)
    train = pd.read_csv(source / "train.csv")
    train["0"] = 0.5  # not a byte: a measurement
    train.to_csv(source / "train.csv", index=False)
    assert describe.infer("wide", source).modality == "tabular"


@pytest.mark.slow
def test_wide_pixel_csvs_run_end_to_end(kc, workspace, tmp_path):
    fetch(kc, workspace, "wide", source=_renamed_kannada(tmp_path, NAMINGS["1x1 … 28x28"]))
    out = run_through(kc, workspace, "wide", "--model", "knn")
    assert out["id"].tolist() == [str(i) for i in range(40)]


@pytest.mark.slow
def test_a_grid_that_is_no_square_gets_a_hint_and_runs_once_declared(kc, workspace, tmp_path):
    source = _renamed_kannada(tmp_path, str, keep=780)  # 26 × 30
    result = kc("fetch", "wide", "--from", source, ws=workspace)
    assert result.exit_code == 0, result.output
    assert ("NOTE: test.csv's 780 columns 0 … 779 are numbered like pixels, but 780 is no square, so kc reads them "
            'as a table; if they are images, set "modality": "pixels"') in result.stderr
    assert "(rows × columns = 780) in competition.json" in result.stderr
    path = workspace / "competitions/wide/competition.json"
    data = json.loads(path.read_text())
    data |= {"modality": "pixels", "features": "pixels", "default_model": "knn", "image_shape": [26, 30]}
    path.write_text(json.dumps(data))
    converted = kc("convert", "wide", ws=workspace)
    assert "train (120, 26, 30) uint8" in converted.stdout, converted.output
    run_through(kc, workspace, "wide", "--model", "knn")


# ---- pixels that stop short of 255 -------------------------------------------------------------------------------


def _small_digits(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """scikit-learn's 8 × 8 digits (values 0-16) as a Kaggle pixel competition: 1,000 rows to train, 200 to test."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.int64)
    source = tmp_path / "digits-8x8"
    source.mkdir()
    columns = [f"pixel{i}" for i in range(64)]
    train = pd.DataFrame(X[:1000], columns=columns)
    train.insert(0, "label", y[:1000])
    train.to_csv(source / "train.csv", index=False)
    test = X[1000:1200].copy()
    test[0, 0] = 17  # brighter than any of train's pixels
    pd.DataFrame(test, columns=columns).to_csv(source / "test.csv", index=False)
    pd.DataFrame({"ImageId": range(1, 201), "Label": 0}).to_csv(source / "sample_submission.csv", index=False)
    return source, test


def test_pixels_of_0_to_16_are_stretched_to_bytes_and_the_convert_says_so(kc, workspace, tmp_path):
    source, test = _small_digits(tmp_path)
    comp = fetch(kc, workspace, "digits-8x8", source=source)
    assert (comp.modality, comp.image_shape) == ("pixels", (8, 8))
    result = kc("convert", "digits-8x8", ws=workspace)
    assert result.exit_code == 0, result.output
    assert "pixels: train's run 0-16; kc stretched them and test's to 0-255 (x 15.94)" in result.stdout
    assert ("WARNING: 0.01% of test's pixels are brighter than train's brightest (16) and became 255: test images "
            "are brighter than any kc learnt from") in result.stderr
    from pipeline.pixels import arrays

    data = arrays.convert(comp, Workspace(workspace))
    assert data.from_cache and data.top == 16 and data.train_images.max() == 255 and data.clipped == 1 / (200 * 64)
    expected = np.clip(np.rint(test * (255 / 16)), 0, 255).reshape(-1, 8, 8)
    assert np.array_equal(data.test_images, expected) and data.test_images[0, 0, 0] == 255
    from pipeline.training import records, trainer

    run = trainer.train(comp, Workspace(workspace), records.TrainConfig(model="linear"))
    assert run.score > 0.9, run.score  # bytes of 0-16 left it near 0.8
    meta = workspace / "competitions/digits-8x8/derived/arrays.json"
    damaged = json.loads(meta.read_text()) | {"top": True, "clipped": True}  # bools pass for numbers in Python
    meta.write_text(json.dumps(damaged))
    assert not arrays.convert(comp, Workspace(workspace)).from_cache  # rebuilt, not trusted


def test_a_pixel_csv_written_with_its_row_index_reads_its_pixels(kc, workspace, tmp_path):
    source, _ = _small_digits(tmp_path)
    for name in ("train.csv", "test.csv"):
        pd.read_csv(source / name).to_csv(source / name)  # pandas' index first, under an empty header cell
    comp = fetch(kc, workspace, "digits-8x8", source=source)
    assert comp.dropped_columns == ("Unnamed: 0",) and comp.image_shape == (8, 8)
    from pipeline.pixels import arrays

    data = arrays.convert(comp, Workspace(workspace))
    assert data.train_images.shape == (1000, 8, 8) and data.test_images.shape == (200, 8, 8)


def test_rows_of_commas_at_the_end_of_a_pixel_csv_are_no_rows(kc, workspace, tmp_path):
    folder = tmp_path / "kannada"
    shutil.copytree(LAYOUTS / "kannada", folder)
    train = folder / "train.csv"
    rows = len(pd.read_csv(train))
    width = len(pd.read_csv(train, nrows=0).columns)
    train.write_bytes(train.read_bytes() + ("," * (width - 1) + "\r\n").encode() * 2)  # a spreadsheet's leftovers
    assert kc("fetch", "kannada", "--from", folder, ws=workspace).exit_code == 0
    converted = kc("convert", "kannada", ws=workspace)  # fetch took them for no rows, convert for a missing label
    assert converted.exit_code == 0, converted.output
    from pipeline.core.dataset import load_dataset

    assert len(load_dataset(competitions.get("kannada", workspace), Workspace(workspace)).y) == rows
