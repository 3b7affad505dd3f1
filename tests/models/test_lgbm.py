import weakref
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import Clock

from pipeline.core.errors import DataError, UsageError
from pipeline.models import _boosting, model_class
from pipeline.models._boosting import inner_split
from pipeline.models.lgbm import BOOSTER, LGBMModel


def classes_table(n, d, k, seed):
    """Features and int64 class codes drawn from a softmax of a random linear map."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    logits = X @ rng.normal(size=(d, k)) * 2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return X, np.array([rng.choice(k, p=row) for row in p], dtype=np.int64)


def values_table(n, seed=0, d=5):
    """Features and float targets 50 + 10 (X w) + noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, 50 + 10 * (X.astype(np.float64) @ rng.normal(size=d)) + 3 * rng.normal(size=n)


def comp(task):
    return SimpleNamespace(task=task, modality="tabular", slug="test")


def log_loss(y, proba):
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, 1))))


def test_registered_for_every_task_on_raw_inputs():
    for task in ("binary", "multiclass", "regression"):
        assert model_class("lgbm", comp(task)) is LGBMModel
    assert not LGBMModel.scaled


def test_early_stopping_keeps_the_round_with_the_lowest_inner_loss():
    X, y = classes_table(n=600, d=6, k=2, seed=1)
    model = LGBMModel(patience=10, n_estimators=400, learning_rate=0.2, refit=False, threads=1).fit(X, y)
    fit_rows, held = inner_split(y, len(y), 0.1, 0)
    assert len(held) == 60 and not np.intersect1d(fit_rows, held).size
    # the inner split's loss after every round, recomputed from the booster: the kept round is its minimum
    grown = model.booster_.current_iteration()
    losses = []
    for k in range(1, grown + 1):
        p = model.booster_.predict(X[held], num_iteration=k)
        losses.append(log_loss(y[held], np.column_stack([1 - p, p])))
    assert model.stopped_by_ == "patience" and grown < 400
    assert model.best_rounds_ == int(np.argmin(losses)) + 1 and grown == model.best_rounds_ + 10


def test_the_validation_rows_a_run_scores_are_never_looked_at():
    X, y = classes_table(n=400, d=5, k=3, seed=2)
    blind = LGBMModel(threads=1).fit(X[:300], y[:300])
    noise = np.random.default_rng(0).normal(size=(100, 5)).astype(np.float32)
    watched = LGBMModel(threads=1).fit(X[:300], y[:300], noise, y[300:][::-1].copy())
    assert np.array_equal(blind.predict_proba(X), watched.predict_proba(X))


def test_classes_learn_log_loss_probabilities_over_the_codes_they_saw():
    X, y = classes_table(n=900, d=6, k=3, seed=3)
    codes = np.array([0, 2, 5])[y]  # a fold may lack some of the competition's classes
    model = LGBMModel(threads=1).fit(X[:700], codes[:700])
    proba = model.predict_proba(X[700:])
    assert proba.dtype == np.float32 and proba.shape == (200, 3)
    assert np.array_equal(model.classes_, [0, 2, 5]) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert set(model.predict(X[700:])) <= {0, 2, 5}
    prior = np.bincount(y[:700]) / 700
    assert log_loss(y[700:], proba) < 0.8 * log_loss(y[700:], np.tile(prior, (200, 1)))


def test_binary_probabilities_are_two_columns_that_sum_to_one():
    X, y = classes_table(n=400, d=4, k=2, seed=4)
    proba = LGBMModel(threads=1).fit(X, y).predict_proba(X)
    assert proba.shape == (400, 2) and np.allclose(proba.sum(1), 1, atol=1e-6)
    assert np.mean(np.argmax(proba, 1) == y) > 0.8


def test_regression_is_squared_error_on_the_scale_it_is_given():
    X, y = values_table(n=400, seed=5)
    model = LGBMModel(threads=1).fit(X[:300], y[:300])
    shifted = LGBMModel(threads=1).fit(X[:300], y[:300] + 1000)
    assert model.regression_ and model.classes_ is None
    assert np.allclose(shifted.predict(X[300:]) - model.predict(X[300:]), 1000, atol=1e-3)
    assert np.sqrt(np.mean((model.predict(X[300:]) - y[300:]) ** 2)) < 0.6 * np.std(y[300:])


def test_refit_fits_all_rows_for_the_stopped_rounds_scaled_up():
    X, y = values_table(n=500, seed=6)
    stopped = LGBMModel(patience=20, refit=False, threads=1).fit(X, y)
    refitted = LGBMModel(patience=20, refit=True, threads=1).fit(X, y)
    assert refitted.best_rounds_ == round(stopped.best_rounds_ / 0.9)
    assert refitted.booster_.current_iteration() == refitted.best_rounds_


@pytest.mark.parametrize("limit", [0.3, 1.0])
def test_a_time_limit_stops_boosting_in_time_with_fewer_rounds_when_short(limit, monkeypatch):
    # on a clock that moves 0.01 s a read (each round reads it once); benchmarks/time_limit.py uses a real one
    rng = np.random.default_rng(7)
    X = rng.normal(size=(3000, 8)).astype(np.float32)
    y = X @ rng.normal(size=8) + rng.normal(size=3000)
    clock = Clock(0.01)
    monkeypatch.setattr(_boosting, "time", clock)
    model = LGBMModel(learning_rate=0.001, patience=0, time_limit=limit, threads=1).fit(X, y)
    assert model.stopped_by_ == "time" and limit * 0.5 < clock.now <= limit * 1.1
    clock.now = 0.0
    short = LGBMModel(learning_rate=0.001, patience=0, time_limit=limit / 3, threads=1).fit(X, y)
    assert short.stopped_by_ == "time" and clock.now <= limit / 3 * 1.1
    assert short.best_rounds_ < model.best_rounds_


def test_save_and_load_round_trip_and_refuse_a_tampered_model(tmp_path):
    X, y = classes_table(n=300, d=5, k=3, seed=8)
    model = LGBMModel(threads=1).fit(X, y)
    model.save(tmp_path)
    again = LGBMModel().load(tmp_path)
    assert np.array_equal(again.predict_proba(X), model.predict_proba(X)) and np.array_equal(again.classes_, [0, 1, 2])
    text = (tmp_path / BOOSTER).read_text()
    for old, new in (("left_child=1", "left_child=0"), ("split_feature=", "split_feature=99 "),
                     ("max_feature_idx=4", "max_feature_idx=9")):
        assert old in text
        (tmp_path / BOOSTER).write_text(text.replace(old, new, 1))
        with pytest.raises(DataError, match=f"run {tmp_path.name}'s lgbm.txt .*; train it again"):
            LGBMModel().load(tmp_path)
    (tmp_path / BOOSTER).unlink()
    with pytest.raises(DataError, match="cannot be read"):
        LGBMModel().load(tmp_path)


def test_options_out_of_range_are_refused():
    X, y = values_table(n=50)
    for option, value in (("feature_fraction", 1.5), ("bagging_fraction", 0.0), ("inner_pct", 0.6)):
        with pytest.raises(UsageError, match=f"option {option}={value}: expected a share"):
            LGBMModel(**{option: value}).fit(X, y)
    with pytest.raises(UsageError, match="must be greater than 0"):
        LGBMModel.from_params({"learning_rate": "0"})


def test_a_fit_lets_go_of_the_rows_handed_to_it_once_they_are_binned(monkeypatch):
    """kc's trainer hands each fit a copy of its rows; every booster learns from LightGBM's bins, so the copy is freed
    before the first one starts (54 MB of a million-row table)."""
    X, y = classes_table(n=400, d=5, k=2, seed=4)
    handed = [X.copy()]
    copy = weakref.ref(handed[0])
    alive_while_boosting = []
    grow = LGBMModel._fit

    def watched(self, rows, y, deadline):
        alive_while_boosting.append(copy() is not None)
        return grow(self, rows, y, deadline)

    monkeypatch.setattr(LGBMModel, "_fit", watched)
    model = LGBMModel(bags=2, patience=5, threads=1).fit(handed.pop(), y)
    assert alive_while_boosting == [False, False] and len(model.bags_) == 1
    assert np.array_equal(model.predict(X), LGBMModel(bags=2, patience=5, threads=1).fit(X, y).predict(X))


def test_a_big_tables_fit_keeps_its_best_trees_alone_and_predicts_the_same(monkeypatch):
    X, y = classes_table(n=600, d=6, k=2, seed=1)
    grown = LGBMModel(patience=10, n_estimators=400, learning_rate=0.2, refit=False, threads=1).fit(X, y)
    assert grown.booster_.current_iteration() == grown.best_rounds_ + 10  # a small table's booster as it grew
    monkeypatch.setattr(_boosting, "COMPACT_ROWS", 600)  # as if 600 rows were a big table
    kept = LGBMModel(patience=10, n_estimators=400, learning_rate=0.2, refit=False, threads=1).fit(X, y)
    assert kept.booster_.current_iteration() == kept.best_rounds_ == grown.best_rounds_
    assert np.array_equal(kept.predict_proba(X), grown.predict_proba(X))


def test_threads_0_means_the_idle_cores_as_for_kcs_other_models(monkeypatch):
    from pipeline.core import threads as cores

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # resolve's 0: $OMP_NUM_THREADS, else the idle cores
    assert LGBMModel()._params(2)["num_threads"] == cores.resolve(0) == 1  # was 0: LightGBM's every core
