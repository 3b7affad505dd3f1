import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import install

from pipeline.core import competitions, dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.core.workspace import Workspace
from pipeline.models.tabular import TabularModel
from pipeline.training import records, splits, trainer

TITANIC = competitions.get("titanic")
DIGITS = competitions.get("digit-recognizer")


def test_split_is_stratified_and_reproducible():
    y = np.array([0] * 80 + [1] * 20)
    tr, va = splits.split(y, 0.1, seed=3)
    assert len(va) == 10 and np.sum(y[va] == 1) == 2
    assert not set(tr) & set(va) and len(tr) + len(va) == 100
    assert np.array_equal(splits.split(y, 0.1, seed=3)[1], va)
    assert not np.array_equal(splits.split(y, 0.1, seed=4)[1], va)


def test_a_split_of_few_distinct_values_holds_some_out():
    houses = competitions.get("house-prices")
    y = np.arange(10, dtype=np.float64) * 1000 + 5000  # ten rows, one in each quantile bin
    train, valid = splits.split(splits.strata(houses, y), 0.1, seed=0)
    assert len(valid) and len(train) + len(valid) == 10 and not set(train) & set(valid)


def test_train_records_a_complete_run(fetched):
    ws = Workspace(fetched)
    run = trainer.train(TITANIC, ws, records.TrainConfig(model="linear", params={"epochs": 4}))
    names = sorted(p.name for p in run.folder.iterdir())
    assert names == ["config.json", "confusion_matrix.png", "features.json", "learning_curves.png", "metrics.json",
                     "test_outputs.npz", "train_rows.npy", "valid.npz", "weights.pt"]
    assert len(np.load(run.folder / "train_rows.npy")) == run.metrics.train_rows
    config = json.loads((run.folder / "config.json").read_text())
    assert config["params"]["epochs"] == 4 and config["params"]["lr"] == 0.08 and config["seed"] == 0  # titanic's
    assert config["model"] == "linear" and "competition" not in config  # the run's folder says which
    metrics = json.loads((run.folder / "metrics.json").read_text())
    fingerprint = dataset.load_dataset(TITANIC, ws).fingerprint
    assert metrics["data_fingerprint"] == fingerprint and metrics["learning_key"] == TITANIC.learning_key
    assert metrics["kc_version"]
    assert metrics["metric"] == "accuracy" and metrics["score"] == run.score
    assert len(metrics["history"]) == 4 and metrics["fold_scores"] == []
    assert metrics["valid_rows"] == 30 and metrics["train_rows"] == 270
    assert metrics["scored_on"] == "split" and metrics["submits_with"] == "model"
    assert json.loads((run.folder / "features.json").read_text())["builder"] == "titanic"
    state = torch.load(run.folder / "weights.pt", weights_only=True)
    assert set(state) == {"weight", "bias", "classes"}
    assert run.plots == [run.folder / "confusion_matrix.png", run.folder / "learning_curves.png"]


@pytest.mark.slow
def test_folds_score_every_row_out_of_fold(fetched):
    ws = Workspace(fetched)
    run = trainer.train(TITANIC, ws, records.TrainConfig(model="linear", params={"epochs": 4}, folds=3))
    assert sorted(p.name for p in run.folder.iterdir() if p.is_dir()) == ["fold0", "fold1", "fold2"]
    assert all((run.folder / f"fold{k}/weights.pt").is_file() for k in range(3))
    m = run.metrics
    assert m.scored_on == "oof" and m.submits_with == "fold-mean" and len(m.fold_scores) == 3
    assert m.valid_rows == 300 and m.train_rows == 200
    saved = records.read_valid(run, TITANIC, 300)
    y = dataset.load_dataset(TITANIC, ws).y
    assert saved["index"].tolist() == list(range(300)) and sorted(set(saved["fold"].tolist())) == [0, 1, 2]
    # an independent count: the share of rows whose out-of-fold class is right, and each fold's share
    right = np.argmax(saved["outputs"], axis=1) == y
    assert run.score == pytest.approx(right.mean())
    assert m.fold_scores == pytest.approx([right[saved["fold"] == k].mean() for k in range(3)])
    assert m.fold_std == pytest.approx(np.std(m.fold_scores))
    assert len(records.load_models(TITANIC, run)) == 3


def test_full_refits_on_every_row_for_the_epochs_validation_chose(fetched):
    ws = Workspace(fetched)
    stages = []
    run = trainer.train(TITANIC, ws, records.TrainConfig(model="linear", params={"epochs": 12, "lr": 0.1}, full=True),
                        on_stage=lambda text, epochs: stages.append((text, epochs)))
    m = run.metrics
    best = min(m.history, key=lambda r: r.valid_loss)
    best = best.epoch
    assert m.submits_with == "full" and m.full_epochs == best and best < 12  # a refit of 12 epochs would differ
    assert json.loads((run.folder / "metrics.json").read_text())["full_epochs"] == best
    assert stages[-3] == (f"refitting linear on all 300 rows for {best} epochs", best)  # the count as a number
    assert stages[-1] == ("predicting the 100 test rows for kc submit", None)
    assert [epochs for _, epochs in stages] == [None, 12, best, None, None]  # loading, validation, refit, saving
    [model] = records.load_models(TITANIC, run)
    from pipeline.models.linear import LinearModel

    data = dataset.load_dataset(TITANIC, ws)
    mine = LinearModel(epochs=best, lr=0.1, seed=0).fit(data.X, data.y)  # every row, no validation
    assert np.allclose(model.predict_proba(data.X_test), mine.predict_proba(data.X_test), atol=1e-6)


def test_a_saved_run_reads_back_as_typed_records(fetched):
    ws = Workspace(fetched)
    run = trainer.train(TITANIC, ws, records.TrainConfig(model="knn", params={"k": 7}, folds=2))
    again = records.get_run(TITANIC, ws, run.run_id)
    assert again == run
    assert isinstance(again.config, records.TrainConfig) and isinstance(again.metrics, records.RunMetrics)
    assert again.config.params["k"] == 7 and again.model == "knn" and again.config.folds == 2
    assert again.metrics.fold_std == pytest.approx(np.std(again.metrics.fold_scores))


@pytest.mark.slow
def test_same_seed_same_metrics(fetched):
    ws = Workspace(fetched)
    cfg = records.TrainConfig(model="linear", params={"epochs": 3}, seed=7)
    a, b = trainer.train(TITANIC, ws, cfg), trainer.train(TITANIC, ws, cfg)
    assert a.run_id != b.run_id
    assert a.metrics.history == b.metrics.history and a.score == b.score


@pytest.mark.slow
def test_same_seed_same_metrics_cnn(fetched):
    ws = Workspace(fetched)
    cfg = records.TrainConfig(model="cnn", params={"epochs": 1, "width": 8, "bs": 32}, seed=1, valid_pct=0.2)
    a, b = trainer.train(DIGITS, ws, cfg), trainer.train(DIGITS, ws, cfg)
    assert a.metrics.history == b.metrics.history


@pytest.mark.slow
def test_runs_are_listed_best_first_and_reload(fetched):
    ws = Workspace(fetched)
    trainer.train(TITANIC, ws, records.TrainConfig(model="linear", params={"epochs": 1, "lr": 1e-6}))
    trainer.train(TITANIC, ws, records.TrainConfig(model="knn"))
    found = records.list_runs(TITANIC, ws)
    assert len(found) == 2
    assert [r.score for r in found] == sorted((r.score for r in found), reverse=True)
    best = records.get_run(TITANIC, ws)
    assert best == found[0]
    model = records.load_model(TITANIC, best)
    data = dataset.load_dataset(TITANIC, ws)
    saved = records.read_valid(best, TITANIC, 300)
    X = data.for_fit(data.X, np.setdiff1d(np.arange(300), saved["index"]))  # the split's group features
    assert np.allclose(model.predict_proba(X[saved["index"]]), saved["outputs"], atol=1e-6)
    with pytest.raises(UsageError) as err:
        records.get_run(TITANIC, ws, "nope")
    assert str(err.value) == "no run 'nope' for titanic; see `kc runs titanic`"


@pytest.mark.slow
def test_a_regression_run_is_best_when_lowest(workspace):
    install(workspace, "house-prices")
    comp = competitions.get("house-prices")
    ws = Workspace(workspace)
    good = trainer.train(comp, ws, records.TrainConfig(model="sk-ridge"))
    bad = trainer.train(comp, ws, records.TrainConfig(model="linear", params={"epochs": 1, "lr": 1e-6}))
    assert good.score < bad.score
    assert [r.run_id for r in records.list_runs(comp, ws)] == [good.run_id, bad.run_id]
    assert sorted(p.name for p in good.folder.glob("*.png")) == ["predicted_vs_true.png"]


def test_no_runs_yet(fetched):
    with pytest.raises(DataError) as err:
        records.get_run(TITANIC, Workspace(fetched))
    assert str(err.value) == "no runs for titanic yet: run `kc train titanic` first"


@pytest.mark.slow
def test_ctrl_c_keeps_the_best_weights_and_records_the_run(fetched):
    ws = Workspace(fetched)

    def interrupt(record):
        if record.epoch == 3:
            raise KeyboardInterrupt

    run = trainer.train(TITANIC, ws, records.TrainConfig(model="linear", params={"epochs": 10}), on_epoch=interrupt)
    assert run.metrics.interrupted is True
    assert len(run.metrics.history) == 3  # epoch 3 finished; the interrupt came as it was reported
    best = min(run.metrics.history, key=lambda r: r.valid_loss)
    assert run.score == pytest.approx(best.valid_accuracy)


@pytest.mark.slow
def test_damaged_weights_are_a_clear_error(fetched):
    ws = Workspace(fetched)
    run = trainer.train(TITANIC, ws, records.TrainConfig(model="linear", params={"epochs": 1}))
    (run.folder / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=f"run {run.run_id}: its saved model cannot be loaded"):
        records.load_model(TITANIC, records.get_run(TITANIC, ws, run.run_id))


@pytest.mark.slow
def test_an_option_no_model_takes_in_a_saved_config_names_the_run(fetched):
    ws = Workspace(fetched)
    run = trainer.train(TITANIC, ws, records.TrainConfig(model="knn"))
    config = json.loads((run.folder / "config.json").read_text())
    config["params"]["weighting"] = "closest"  # a hand edit, not the user's -p
    (run.folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match=f"^run {run.run_id}: its config.json says option weighting='closest': "
                                        "expected distance or uniform; train it again or pick another run$"):
        records.load_model(TITANIC, records.get_run(TITANIC, ws, run.run_id))


def test_damaged_run_folders_are_listed_apart(fetched):
    ws = Workspace(fetched)
    run = trainer.train(TITANIC, ws, records.TrainConfig(model="knn"))
    broken = ws.runs_dir("titanic") / "20000101-000000-knn"
    broken.mkdir()
    (broken / "config.json").write_text("{")
    no_score = ws.runs_dir("titanic") / "20000101-000001-knn"
    no_score.mkdir()
    (no_score / "config.json").write_text((run.folder / "config.json").read_text())
    (no_score / "metrics.json").write_text(json.dumps({"metric": "accuracy"}))
    good, damaged = records.scan(TITANIC, ws)
    assert [r.run_id for r in good] == [run.run_id]
    assert damaged == [records.Damaged(broken.name, "config.json cannot be read (JSONDecodeError)"),
                       records.Damaged(no_score.name, "metrics.json: missing score, valid_rows, train_rows, "
                                                      "fit_seconds, predict_seconds")]
    (run.folder / "valid.npz").write_bytes(b"junk")
    with pytest.raises(DataError) as err:
        records.read_valid(run, TITANIC, 300)
    assert str(err.value) == f"run {run.run_id}: valid.npz cannot be read (ValueError); train the run again"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"valid_pct": 0.0}, "--valid-pct 0.0: expected a fraction between 0.01 and 0.5, e.g. 0.1"),
        ({"valid_pct": 0.6}, "--valid-pct 0.6: expected a fraction between 0.01 and 0.5, e.g. 0.1"),
        ({"seed": -1}, "--seed -1: expected an integer from 0 to 4294967295"),
        ({"folds": 1}, "--folds 1: expected 0 (one validation split) or a number from 2 to 20"),
        ({"device": "tpu"}, "--device tpu: expected one of auto, cpu, cuda"),
    ],
)
def test_config_refuses_values_no_run_could_use(fetched, change, error):
    cfg = dataclasses.replace(records.TrainConfig(model="linear"), **change)
    with pytest.raises(UsageError) as err:
        cfg.check()
    assert str(err.value) == error
    with pytest.raises(UsageError):
        trainer.train(TITANIC, Workspace(fetched), cfg)
    assert not (fetched / "competitions/titanic/runs").exists()


def _flip_fold(data: dataset.Dataset, rows: np.ndarray) -> dataset.Dataset:
    """The same dataset with the labels of `rows` flipped, in its targets and in its group features alike."""
    y = data.y.copy()
    y[rows] = 1 - y[rows]
    return dataclasses.replace(data, y=y, fit_columns=dataclasses.replace(data.fit_columns, labels=y.astype(float)))


@pytest.mark.slow
def test_validation_labels_never_reach_their_fold(fetched, monkeypatch):
    data = dataset.load_dataset(TITANIC, Workspace(fetched))
    parts = splits.folds(data.y, 5, 0)
    monkeypatch.setattr(splits, "folds", lambda *_: parts)  # the same folds whatever the labels
    flipped = _flip_fold(data, parts[0])
    cfg = records.TrainConfig(model="sk-logistic", folds=5)  # it fits on the training rows alone

    def oof(d: dataset.Dataset, per_fit: bool) -> np.ndarray:
        hook = (lambda rows: d.for_fit(d.X, rows)) if per_fit else None
        X = d.X if per_fit else d.for_fit(d.X, np.arange(len(d.y)))  # without the hook: labels of every row
        return trainer.validate(TITANIC, cfg, X, d.y, None, lambda _text, _epochs: None, None, hook).out

    a, b = oof(data, True), oof(flipped, True)
    fold0 = parts[0]
    assert np.array_equal(a[fold0], b[fold0])  # fold 0's predictions ignore fold 0's labels
    assert not np.array_equal(a, b)  # other folds train on those labels
    # features built once from every label (a cached table) let fold 0's labels into its own predictions
    leaky, leaky_flipped = oof(data, False), oof(flipped, False)
    assert not np.array_equal(leaky[fold0], leaky_flipped[fold0])


@pytest.mark.slow
def test_the_competitions_own_options_apply_to_its_default_model_and_yield_to_the_users(fetched):
    ws = Workspace(fetched)
    assert TITANIC.default_model == "linear" and TITANIC.options_for("linear") == {"lr": "0.08"}
    given = trainer.train(TITANIC, ws, records.TrainConfig(model="linear", params={"epochs": 2, "lr": "0.02"}))
    assert given.config.params["lr"] == 0.02 and given.config.params["epochs"] == 2
    other = trainer.train(TITANIC, ws, records.TrainConfig(model="tabular", params={"epochs": 1}))
    assert other.config.params["lr"] == TabularModel.lr != 0.08  # another model keeps its own default


@pytest.mark.slow
def test_titanic_runs_record_their_group_features(fetched):
    ws = Workspace(fetched)
    run = trainer.train(TITANIC, ws, records.TrainConfig(model="sk-logistic", folds=3))
    record = json.loads((run.folder / "features.json").read_text())
    assert record["groups"] == ["woman-child"] and record["fit_columns"][0] == "WCGKnown"
    plain = trainer.train(TITANIC, ws, records.TrainConfig(model="sk-logistic", features="titanic-plain"))
    record = json.loads((plain.folder / "features.json").read_text())
    assert record["builder"] == "titanic-plain" and record["groups"] == record["fit_columns"] == []
    assert not any(c.startswith("WCG") for c in record["columns"])


def test_a_refit_stopped_by_ctrl_c_is_not_what_submits(fetched):
    seen = []

    def stop_in_the_refit(record):
        seen.append(record.epoch)
        if len(seen) > 3:  # the validation fit's 3 epochs are done: this is the refit
            raise KeyboardInterrupt

    cfg = records.TrainConfig(model="linear", params={"epochs": 3}, full=True)
    run = trainer.train(TITANIC, Workspace(fetched), cfg, on_epoch=stop_in_the_refit)
    assert seen == [1, 2, 3, 1] and run.metrics.submits_with == "model" and run.metrics.full_epochs is None
