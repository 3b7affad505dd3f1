"""What a run writes and reads back: any damage to its JSON makes the run 'damaged', never a crash elsewhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import copied_run, trained_template

from pipeline.core import competitions
from pipeline.core.epochs import Epoch
from pipeline.core.errors import DataError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.training import records, trainer

TITANIC = competitions.get("titanic")


@pytest.fixture(scope="module")
def knn_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return trained_template(tmp_path_factory, "titanic", "knn")


@pytest.fixture
def knn_run(knn_template: tuple[Path, str], tmp_path: Path) -> tuple[Workspace, records.Run]:
    root, run = copied_run(knn_template, tmp_path)
    return Workspace(root), run


def planted(ws: Workspace, run: records.Run, name: str, text: str) -> str:
    """A copy of `run` whose file `name` holds `text`, sorted before it; returns the copy's id."""
    copy = ws.runs_dir("titanic") / "20000101-000000-knn"
    copy.mkdir()
    for f in ("config.json", "metrics.json"):
        (copy / f).write_text((run.folder / f).read_text())
    (copy / name).write_text(text)
    return copy.name


def metrics_with(run: records.Run, **changes: object) -> str:
    return json.dumps({**json.loads((run.folder / "metrics.json").read_text()), **changes})


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("metrics.json", lambda r: metrics_with(r, valid_rows="abc"), "metrics.json: valid_rows is str, expected int"),
    ("metrics.json", lambda r: metrics_with(r, score="0.5"), "metrics.json: score is str, expected int or float"),
    ("metrics.json", lambda r: metrics_with(r, score=1e308), "metrics.json has no usable score"),
    ("metrics.json", lambda r: metrics_with(r, fold_scores=[], submits_with="fold-mean"),
     "metrics.json: submits with the fold models, but lists 0 folds"),
    ("metrics.json", lambda r: metrics_with(r, history=[{"loss": "x"}]),
     "metrics.json: scores must be numbers and history a list of epochs"),
    ("config.json", lambda r: "[" * 200_000 + "]" * 200_000, "config.json cannot be read (RecursionError)"),
    ("config.json", lambda r: json.dumps({"model": "knn", "params": {}, "seed": "0"}),
     "config.json: seed is str, expected int"),
])
def test_a_damaged_run_is_listed_apart_and_the_others_still_work(knn_run, kc, name, content, reason):
    ws, run = knn_run
    bad = planted(ws, run, name, content(run))
    good, damaged = records.scan(TITANIC, ws)
    assert [r.run_id for r in good] == [run.run_id]
    assert damaged == [records.Damaged(bad, reason)]
    for command in (("runs", "titanic"), ("submit", "titanic"), ("report", "titanic")):
        result = kc(*command, ws=ws.root)
        assert result.exit_code == 0, (command, result.output)


def test_an_empty_run_id_is_no_run(knn_run):
    ws, _ = knn_run
    with pytest.raises(UsageError) as err:
        records.get_run(TITANIC, ws, "")
    assert str(err.value) == "no run '' for titanic; see `kc runs titanic`"


def test_a_planted_runs_symlink_is_refused(titanic_only, tmp_path):
    ws = Workspace(titanic_only)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, ws.runs_dir("titanic"))
    with pytest.raises(DataError) as err:
        trainer.train(TITANIC, ws, records.TrainConfig(model="knn"))
    assert str(err.value) == (f"{ws.runs_dir('titanic')} is a symbolic link, not kc's own folder of runs: move it "
                              "away, then train again")
    assert list(elsewhere.iterdir()) == []


@pytest.fixture(scope="module")
def logistic_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return trained_template(tmp_path_factory, "titanic", "sk-logistic")


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("classes_", np.array([5, 7]), "has the classes [5, 7], not titanic's codes 0-1"),
    ("classes_", np.array(["a", "b"]), "has the classes ['a', 'b'], not titanic's codes 0-1"),
    ("classes_", np.array([-1, 0]), "has the classes [-1, 0], not titanic's codes 0-1"),
    ("coef_", np.zeros((1, 3)), "has weights of shape (1, 3) for"),
    ("n_features_in_", 10**9, "has weights of shape (1, 25) for 1000000000 input columns"),
])
def test_an_edited_skops_model_is_refused_before_it_predicts(logistic_template, tmp_path, kc, field, value, problem):
    import skops.io

    from pipeline.models.sklearn_models import ESTIMATOR

    titanic_only, run = copied_run(logistic_template, tmp_path)
    path = run.folder / ESTIMATOR
    est = skops.io.load(path, trusted=[])
    setattr(est, field, value)
    skops.io.dump(est, path)
    result = kc("submit", "titanic", "--run", run.run_id, ws=titanic_only)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: run {run.run_id}: its saved model {problem}")
    assert list((titanic_only / "submissions").glob("*/*.csv")) == []


def test_a_run_written_before_epochs_were_records_still_loads(tmp_path):
    # metrics.json as kc wrote it while epochs were plain dicts: the same keys, read back as Epochs
    folder = tmp_path / "20240101-000000-cnn"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model": "cnn", "params": {"epochs": 2}, "competition": "dr"}))
    history = [{"epoch": 1, "train_loss": 0.9, "valid_loss": 0.5, "valid_accuracy": 0.91},
               {"epoch": 2, "train_loss": 0.4, "valid_loss": 0.3, "valid_accuracy": 0.95}]
    (folder / "metrics.json").write_text(json.dumps({
        "metric": "accuracy", "score": 0.95, "valid_rows": 100, "train_rows": 900, "fit_seconds": 12.5,
        "predict_seconds": 0.5, "scored_on": "split", "interrupted": False, "history": history, "fold_scores": [],
        "compute": "fp32 channels-last, 1 thread", "full_epochs": None, "submits_with": "model"}))
    run = records.read_run(folder)
    assert run.metrics.history == [Epoch(1, 0.9, 0.5, valid_accuracy=0.91), Epoch(2, 0.4, 0.3, valid_accuracy=0.95)]
    assert run.metrics.to_json()["history"] == history  # and new runs write their epochs the same way
