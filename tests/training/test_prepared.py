import os

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES, copied_run

from pipeline.core import competitions
from pipeline.core.dataset import load_dataset
from pipeline.core.workspace import Workspace
from pipeline.submitting import ensembles, ledger
from pipeline.training import prepared, records, trainer

TITANIC = competitions.get("titanic")
LAYOUTS = FIXTURES / "layouts"


@pytest.fixture(scope="module")
def folds_template(tmp_path_factory):
    """Titanic with one 3-fold lgbm run: it submits with the mean of three fold models."""
    from conftest import install

    root = tmp_path_factory.mktemp("prepared") / "ws"
    root.mkdir()
    install(root, "titanic")
    run = trainer.train(TITANIC, Workspace(root), records.TrainConfig(model="lgbm", folds=3, threads=1))
    return root, run.run_id


@pytest.fixture
def folds_run(folds_template, tmp_path):
    return copied_run(folds_template, tmp_path)


def submission(ws: Workspace, run) -> pd.DataFrame:
    return pd.read_csv(ledger.predict_run(TITANIC, ws, run.run_id).path)


def forbid_loading_models(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("submit loaded the run's models")

    monkeypatch.setattr(records, "load_models", refuse)


def test_a_new_run_keeps_its_test_outputs_and_submit_writes_them_without_its_models(folds_run, monkeypatch):
    root, run = folds_run
    ws = Workspace(root)
    data = load_dataset(TITANIC, ws)
    saved = np.load(run.folder / prepared.FILE)["outputs"]
    assert saved.shape == (len(data.test_ids), 2) and len(data.test_ids) > 50
    np.testing.assert_array_equal(saved, prepared.test_outputs(TITANIC, run, data))  # the fold models' mean, now
    forbid_loading_models(monkeypatch)
    written = submission(ws, run)
    assert written["Survived"].tolist() == np.argmax(saved, axis=1).tolist()


def test_without_the_file_submit_predicts_and_writes_the_same_bytes(folds_run):
    root, run = folds_run
    ws = Workspace(root)
    first = ledger.predict_run(TITANIC, ws, run.run_id).path.read_bytes()
    (run.folder / prepared.FILE).unlink()
    (ws.submissions_dir("titanic") / f"{run.run_id}.csv").unlink()
    assert ledger.predict_run(TITANIC, ws, run.run_id).path.read_bytes() == first


@pytest.mark.parametrize("damage", ["garbage", "rows", "nan", "key"])
def test_damaged_or_foreign_outputs_are_passed_over(folds_run, damage):
    root, run = folds_run
    ws = Workspace(root)
    path = run.folder / prepared.FILE
    with np.load(path) as saved:
        outputs, key = saved["outputs"], saved["key"]
    if damage == "garbage":
        path.write_bytes(b"PK\x03\x04 not a zip")
    else:
        outputs = {"rows": outputs[:-1], "nan": np.where(outputs > 0.5, np.nan, outputs), "key": 1 - outputs}[damage]
        with open(path, "wb") as f:
            np.savez(f, outputs=outputs, key=np.array("other data") if damage == "key" else key)
    data = load_dataset(TITANIC, ws)
    assert prepared.load(TITANIC, ws, run, data) is None
    np.testing.assert_array_equal(prepared.outputs(TITANIC, ws, run, data), prepared.test_outputs(TITANIC, run, data))


def test_a_same_size_edit_of_the_test_file_with_its_time_restored_is_predicted_afresh(folds_run):
    root, run = folds_run
    ws = Workspace(root)
    test_csv = ws.data_dir("titanic") / "test.csv"
    before = os.stat(test_csv)
    content = test_csv.read_bytes()
    assert b"Kelly, Mr. James" in content
    test_csv.write_bytes(content.replace(b"Kelly, Mr. James", b"Kelly, Mr. Jamez"))  # same size
    os.utime(test_csv, ns=(before.st_atime_ns, before.st_mtime_ns))
    data = load_dataset(TITANIC, ws)
    assert data.fingerprint == run.metrics.data_fingerprint  # size and time alone cannot tell
    assert prepared.load(TITANIC, ws, run, data) is None


def saving(folds_run, **changes):
    """prepared.save on the run with its file removed: (whether it kept outputs, what it said, the file exists)."""
    root, run = folds_run
    ws = Workspace(root)
    (run.folder / prepared.FILE).unlink()
    data = load_dataset(TITANIC, ws)
    said: list[str] = []
    chosen = changes.pop("run", run)
    args = {"until": None, "before": prepared.data_key(TITANIC, ws, data)} | changes
    kept = prepared.save(TITANIC, ws, chosen, data, lambda text, _: said.append(text), **args)
    return kept, said, (run.folder / prepared.FILE).exists()


def test_saving_again_keeps_outputs_that_load(folds_run):
    kept, said, exists = saving(folds_run)
    root, run = folds_run
    assert kept and exists and said == ["predicting the 100 test rows for kc submit"]
    assert prepared.load(TITANIC, Workspace(root), run, load_dataset(TITANIC, Workspace(root))) is not None


def test_no_time_left_keeps_no_outputs(folds_run):
    assert saving(folds_run, until=0.0) == (  # long past
        False, ["no time left under --time-limit to predict the test rows; kc submit will predict them"], False)


def test_the_limit_passing_while_predicting_keeps_no_outputs(folds_run, monkeypatch):
    from conftest import Clock

    monkeypatch.setattr(prepared, "time", Clock(1.0))  # each reading one second on: the third chunk is past
    monkeypatch.setattr(prepared, "PREDICT_CHUNK", 10)
    kept, said, exists = saving(folds_run, until=3.5)
    assert (kept, exists) == (False, False)
    assert said[-1] == "--time-limit reached while predicting the test rows; kc submit will predict them"


def test_an_interrupted_run_keeps_no_outputs(folds_run):
    interrupted = records.read_run(folds_run[1].folder)
    interrupted.metrics.interrupted = True
    assert saving(folds_run, run=interrupted) == (False, [], False)


def test_data_changed_while_training_keeps_no_outputs(folds_run):
    kept, said, exists = saving(folds_run, before="the files as they were when loaded")
    assert (kept, exists) == (False, False)
    assert said[-1] == "the data files changed while training: the test rows were not kept; kc submit will predict them"


def test_a_file_that_cannot_be_written_loses_nothing(folds_run):
    root, run = folds_run
    ws = Workspace(root)
    target = run.folder / prepared.FILE
    target.unlink()
    target.mkdir()  # a folder where the file goes: writing fails with an OSError, as a full disk would
    data = load_dataset(TITANIC, ws)
    said: list[str] = []
    kept = prepared.save(TITANIC, ws, run, data, lambda text, _: said.append(text), None,
                         prepared.data_key(TITANIC, ws, data))
    assert not kept and target.is_dir()
    assert said[-1] == "the test rows were not kept (Is a directory); kc submit will predict them"


def test_a_changed_description_or_train_labels_send_submit_back_to_the_models(folds_run):
    import dataclasses

    root, run = folds_run
    ws = Workspace(root)
    data = load_dataset(TITANIC, ws)
    other = dataclasses.replace(TITANIC, classes=TITANIC.classes[::-1])  # the description changed
    assert prepared.load(other, ws, run, data) is None
    train_csv = ws.data_dir("titanic") / "train.csv"
    before = os.stat(train_csv)
    header, *rows = train_csv.read_bytes().split(b"\n")
    flip = {b"0": b"1", b"1": b"0"}

    def flipped(row: bytes) -> bytes:  # Survived is the second column: same size
        cells = row.split(b",", 2)
        return b",".join([cells[0], flip[cells[1]], cells[2]]) if len(cells) == 3 else row

    train_csv.write_bytes(b"\n".join([header, *map(flipped, rows)]))
    os.utime(train_csv, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = load_dataset(TITANIC, ws)
    assert again.fingerprint == run.metrics.data_fingerprint  # size and time alone cannot tell
    assert prepared.load(TITANIC, ws, run, again) is None  # Titanic's test features come from train labels


def test_odd_files_in_the_run_folder_are_never_read(folds_run):
    root, run = folds_run
    ws = Workspace(root)
    (run.folder / "notes.txt").symlink_to("/proc/self/mem")  # reading it fails
    os.mkfifo(run.folder / "pipe")  # opening it would wait forever
    data = load_dataset(TITANIC, ws)
    assert prepared.load(TITANIC, ws, run, data) is None  # the run's files changed: predict afresh
    (run.folder / "notes.txt").unlink()
    (run.folder / "pipe").unlink()
    assert prepared.load(TITANIC, ws, run, data) is not None


def test_outputs_declaring_a_huge_shape_are_never_read(folds_run):
    import io
    import zipfile

    root, run = folds_run
    ws = Workspace(root)
    with np.load(run.folder / prepared.FILE) as saved:
        key = saved["key"]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 2)})
    keyed = io.BytesIO()
    np.lib.format.write_array(keyed, key)
    with zipfile.ZipFile(run.folder / prepared.FILE, "w") as z:  # 8 TB declared, nothing behind it
        z.writestr("key.npy", keyed.getvalue())
        z.writestr("outputs.npy", header.getvalue())
    assert prepared.load(TITANIC, ws, run, load_dataset(TITANIC, ws)) is None


def test_an_ensemble_reads_its_members_outputs_without_their_models(folds_run, monkeypatch):
    root, run = folds_run
    ws = Workspace(root)
    other = trainer.train(TITANIC, ws, records.TrainConfig(model="sk-logistic", folds=3, threads=1))
    forbid_loading_models(monkeypatch)
    result = ensembles.ensemble(TITANIC, ws, [run.run_id, other.run_id], "mean")
    outs = [np.load(r.folder / prepared.FILE)["outputs"] for r in (run, other)]
    expected = np.argmax(np.mean(outs, axis=0), axis=1)
    assert pd.read_csv(result.written.path)["Survived"].tolist() == expected.tolist()


def test_several_targets_keep_one_column_each(workspace):
    from pipeline.ingest.sources import fetch

    comp = fetch("sizes", Workspace(workspace), LAYOUTS / "sizes", metric="mean-rmsle").competition
    ws = Workspace(workspace)
    run = trainer.train(comp, ws, records.TrainConfig(model="sk-ridge", threads=1))
    saved = np.load(run.folder / prepared.FILE)["outputs"]
    assert saved.shape == (len(pd.read_csv(LAYOUTS / "sizes/test.csv")), 2)
    first = ledger.predict_run(comp, ws, run.run_id).path
    (run.folder / prepared.FILE).unlink()
    again = ledger.predict_run(comp, ws, run.run_id)
    assert not again.new and again.path == first  # predicted afresh: the same bytes, so not written twice


def test_an_edited_run_is_refused_as_before_not_submitted_from_its_outputs(folds_run, kc):
    root, run = folds_run
    config = run.folder / "config.json"
    config.write_text(config.read_text().replace('"model": "lgbm"', '"model": "no-such-model"'))
    refused = kc("submit", "titanic", "--run", run.run_id, ws=root)
    assert refused.exit_code == 1 and "no-such-model" in refused.stderr
    assert not (root / "submissions/titanic").exists()


def test_files_that_take_no_part_in_predicting_may_change(folds_run, monkeypatch):
    root, run = folds_run
    ws = Workspace(root)
    (run.folder / "confusion_matrix.png").write_bytes(b"redrawn")
    (run.folder / "importance.png").write_bytes(b"kc explain drew this later")
    (run.folder / "fold0" / "train_rows.npy").write_bytes(b"")
    assert prepared.load(TITANIC, ws, run, load_dataset(TITANIC, ws)) is not None
    (run.folder / "fold2" / "lgbm.txt").write_text("tree\n")  # a model file: the outputs no longer hold
    assert prepared.load(TITANIC, ws, run, load_dataset(TITANIC, ws)) is None


class Planted:
    """Unpickling this touches a file: proof that a loader ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_planted_as_the_outputs_is_never_unpickled(folds_run, tmp_path):
    root, run = folds_run
    ws = Workspace(root)
    marker = tmp_path / "code-ran"
    with np.load(run.folder / prepared.FILE) as saved:
        key = saved["key"]
    with open(run.folder / prepared.FILE, "wb") as f:
        np.savez(f, outputs=np.array([Planted(marker)], dtype=object), key=key)
    data = load_dataset(TITANIC, ws)
    assert prepared.load(TITANIC, ws, run, data) is None and not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize(("slug", "model", "params"), [
    ("titanic", "linear", {"epochs": 3}), ("titanic", "knn", {}), ("titanic", "sk-logistic", {}),
    ("titanic", "sk-gbm", {}), ("titanic", "catboost", {"iterations": 20}), ("titanic", "tabular", {"epochs": 1}),
    ("titanic", "blend", {"members": "sk-logistic,lgbm"}), ("digit-recognizer", "cnn", {"epochs": 1, "width": 4}),
])
def test_outputs_kept_from_the_models_in_memory_are_what_the_saved_models_predict(workspace, slug, model, params):
    from conftest import install

    install(workspace, slug)
    comp, ws = competitions.get(slug), Workspace(workspace)
    run = trainer.train(comp, ws, records.TrainConfig(model=model, params=params, folds=2, threads=1))
    data = load_dataset(comp, ws)
    with np.load(run.folder / prepared.FILE) as saved:
        kept = saved["outputs"]
    np.testing.assert_array_equal(kept, prepared.test_outputs(comp, run, data))  # loaded from the folder, as submit
