import json

import numpy as np
import pytest
import torch

from pipeline import competitions, convert, runs
from pipeline.errors import DataError, UsageError
from pipeline.workspace import Workspace

TITANIC = competitions.get("titanic")
DIGITS = competitions.get("digit-recognizer")


def test_split_is_stratified_and_reproducible():
    y = np.array([0] * 80 + [1] * 20)
    tr, va = runs.split(y, 0.1, seed=3)
    assert len(va) == 10 and np.sum(y[va] == 1) == 2
    assert not set(tr) & set(va) and len(tr) + len(va) == 100
    assert np.array_equal(runs.split(y, 0.1, seed=3)[1], va)
    assert not np.array_equal(runs.split(y, 0.1, seed=4)[1], va)


def test_train_records_a_complete_run(fetched):
    ws = Workspace(fetched)
    run = runs.train(TITANIC, ws, runs.TrainConfig(model="linear", params={"epochs": 4}, cv=3))
    names = sorted(p.name for p in run.folder.iterdir())
    assert names == ["config.json", "confusion_matrix.png", "learning_curves.png", "metrics.json", "valid.npz",
                     "weights.pt"]
    config = json.loads((run.folder / "config.json").read_text())
    assert config["params"]["epochs"] == 4 and config["params"]["lr"] == 0.01 and config["seed"] == 0
    assert config["data_fingerprint"] and config["kc_version"]
    metrics = json.loads((run.folder / "metrics.json").read_text())
    assert len(metrics["history"]) == 4 and len(metrics["cv_scores"]) == 3
    assert metrics["valid_rows"] == 30
    state = torch.load(run.folder / "weights.pt", weights_only=True)
    assert set(state) == {"weight", "bias", "classes"}


def test_same_seed_same_metrics(fetched):
    ws = Workspace(fetched)
    cfg = runs.TrainConfig(model="linear", params={"epochs": 3}, seed=7)
    a, b = runs.train(TITANIC, ws, cfg), runs.train(TITANIC, ws, cfg)
    assert a.run_id != b.run_id
    assert a.metrics["history"] == b.metrics["history"] and a.score == b.score


@pytest.mark.slow
def test_same_seed_same_metrics_cnn(fetched):
    ws = Workspace(fetched)
    cfg = runs.TrainConfig(model="cnn", params={"epochs": 1, "width": 8, "bs": 32}, seed=1, valid_pct=0.2)
    a, b = runs.train(DIGITS, ws, cfg), runs.train(DIGITS, ws, cfg)
    assert a.metrics["history"] == b.metrics["history"]


def test_runs_are_listed_best_first_and_reload(fetched):
    ws = Workspace(fetched)
    runs.train(TITANIC, ws, runs.TrainConfig(model="linear", params={"epochs": 1, "lr": 1e-6}))
    runs.train(TITANIC, ws, runs.TrainConfig(model="knn"))
    found = runs.list_runs(TITANIC, ws)
    assert [r.score for r in found] == sorted((r.score for r in found), reverse=True)
    best = runs.get_run(TITANIC, ws)
    model = runs.load_model(TITANIC, best)
    data = convert.load_dataset(TITANIC, ws)
    saved = np.load(best.folder / "valid.npz")
    assert np.allclose(model.predict_proba(data.X[saved["index"]]), saved["proba"], atol=1e-6)
    with pytest.raises(UsageError, match="no run 'nope' for titanic; see `kc runs titanic`"):
        runs.get_run(TITANIC, ws, "nope")


def test_no_runs_yet(fetched):
    with pytest.raises(DataError, match=r"no runs for titanic yet: run `kc train titanic --model linear` first"):
        runs.get_run(TITANIC, Workspace(fetched))


def test_ctrl_c_keeps_the_best_weights_and_records_the_run(fetched):
    ws = Workspace(fetched)

    def interrupt(record):
        if record["epoch"] == 3:
            raise KeyboardInterrupt

    run = runs.train(TITANIC, ws, runs.TrainConfig(model="linear", params={"epochs": 10}), on_epoch=interrupt)
    assert run.metrics["interrupted"] is True
    assert len(run.metrics["history"]) == 3  # epoch 3 finished; the interrupt came as it was reported
    best = min(run.metrics["history"], key=lambda r: r["valid_loss"])
    assert run.score == pytest.approx(best["valid_accuracy"])


def test_damaged_weights_are_a_clear_error(fetched):
    ws = Workspace(fetched)
    run = runs.train(TITANIC, ws, runs.TrainConfig(model="linear", params={"epochs": 1}))
    (run.folder / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=f"run {run.run_id}: its saved model cannot be loaded"):
        runs.load_model(TITANIC, runs.get_run(TITANIC, ws, run.run_id))
