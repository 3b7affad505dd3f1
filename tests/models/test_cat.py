import numpy as np
import pytest
from conftest import Clock
from test_lgbm import classes_table, comp, log_loss, values_table

from pipeline.core.errors import DataError, UsageError
from pipeline.models import _boosting, model_class
from pipeline.models._boosting import inner_split
from pipeline.models.cat import SAVED, STATE, CatBoostModel


def test_registered_for_every_task_on_raw_table_inputs():
    for task in ("binary", "multiclass", "regression"):
        assert model_class("catboost", comp(task)) is CatBoostModel
    assert not CatBoostModel.scaled and CatBoostModel.modalities == ("tabular",)


def test_early_stopping_keeps_the_round_with_the_lowest_inner_loss():
    X, y = classes_table(n=600, d=6, k=2, seed=1)
    model = CatBoostModel(patience=15, iterations=600, learning_rate=0.3, refit=False, threads=1).fit(X, y)
    _, held = inner_split(y, len(y), 0.1, 0)
    # the inner loss after every round, recomputed from CatBoost's staged predictions: the kept round is its minimum
    full = CatBoostModel(patience=0, iterations=600, learning_rate=0.3, threads=1)
    full._start(y)
    fitted, _ = full._estimator(600, None)
    fit_rows = np.setdiff1d(np.arange(len(y)), held)
    fitted.fit(X[fit_rows], y[fit_rows])
    losses = [log_loss(y[held], p) for p in fitted.staged_predict_proba(X[held])]
    assert model.stopped_by_ == "patience" and model.best_rounds_ < 600
    assert model.best_rounds_ == int(np.argmin(losses)) + 1


def test_a_constant_target_is_a_one_line_error_and_a_nearly_constant_one_fits():
    X, y = values_table(n=60)
    with pytest.raises(DataError, match="catboost needs targets of at least two values to learn from"):
        CatBoostModel(iterations=10, threads=1).fit(X, np.full(len(y), 3.0))
    _, held = inner_split(None, len(y), CatBoostModel().inner_pct, 0)
    nearly = np.full(len(y), 3.0)
    nearly[held[0]] = 4.0  # its early-stopping rows hold one value: every row is fitted, without stopping early
    model = CatBoostModel(iterations=10, threads=1).fit(X, nearly)
    assert model.stopped_by_ == "rounds" and np.isfinite(model.predict(X)).all()


def test_a_fit_that_ran_every_round_says_so_though_it_keeps_fewer_trees():
    X, y = classes_table(n=600, d=6, k=2, seed=1)
    model = CatBoostModel(patience=500, iterations=40, learning_rate=0.9, refit=False, threads=1).fit(X, y)
    assert model.best_rounds_ < 40 and model.stopped_by_ == "rounds"  # the best round came early; no stop did


def test_the_validation_rows_a_run_scores_are_never_looked_at():
    X, y = classes_table(n=400, d=5, k=3, seed=2)
    blind = CatBoostModel(threads=1, iterations=200).fit(X[:300], y[:300])
    garbage = CatBoostModel(threads=1, iterations=200).fit(X[:300], y[:300], X[300:] * 0 + 9, (y[300:] + 1) % 3)
    assert np.array_equal(blind.predict_proba(X[300:]), garbage.predict_proba(X[300:]))


def test_refit_fits_all_rows_for_the_stopped_rounds_scaled_up():
    X, y = values_table(n=500, seed=6)
    stopped = CatBoostModel(patience=20, refit=False, threads=1, learning_rate=0.2).fit(X, y)
    refitted = CatBoostModel(patience=20, refit=True, threads=1, learning_rate=0.2).fit(X, y)
    assert refitted.best_rounds_ == round(stopped.best_rounds_ / 0.9)
    assert np.sqrt(np.mean((refitted.predict_values(X) - y) ** 2)) < np.std(y) / 2


def test_a_time_limit_stops_boosting_in_time_with_fewer_rounds_when_short(monkeypatch):
    # on a clock that moves 0.01 s a read; benchmarks/time_limit.py measures a real one
    X, y = values_table(n=2000, seed=7, d=8)
    clock = Clock(0.01)
    monkeypatch.setattr(_boosting, "time", clock)
    model = CatBoostModel(learning_rate=0.001, patience=0, time_limit=1.0, threads=1).fit(X, y)
    assert model.stopped_by_ == "time" and 0.5 < clock.now <= 1.1
    clock.now = 0.0
    short = CatBoostModel(learning_rate=0.001, patience=0, time_limit=0.3, threads=1).fit(X, y)
    assert short.stopped_by_ == "time" and clock.now <= 0.33 and short.best_rounds_ < model.best_rounds_


def test_save_and_load_round_trip_and_refuse_a_damaged_or_foreign_model(tmp_path):
    X, y = classes_table(n=300, d=5, k=3, seed=8)
    model = CatBoostModel(threads=1, iterations=100).fit(X, y)
    model.save(tmp_path)
    again = CatBoostModel().load(tmp_path)
    assert np.array_equal(again.predict_proba(X), model.predict_proba(X)) and np.array_equal(again.classes_, [0, 1, 2])
    saved = (tmp_path / SAVED).read_bytes()
    (tmp_path / SAVED).write_bytes(saved[: len(saved) // 2])
    with pytest.raises(DataError, match=f"run {tmp_path.name}'s catboost.cbm or catboost.json cannot be read"):
        CatBoostModel().load(tmp_path)
    Xv, yv = values_table(n=100)
    CatBoostModel(threads=1, iterations=20).fit(Xv, yv).model_.save_model(str(tmp_path / SAVED))  # another run's
    with pytest.raises(DataError, match="does not match the run's features or classes"):
        CatBoostModel().load(tmp_path)
    (tmp_path / STATE).unlink()
    with pytest.raises(DataError, match="cannot be read"):
        CatBoostModel().load(tmp_path)


def test_options_out_of_range_are_refused():
    X, y = values_table(n=50)
    with pytest.raises(UsageError, match="option depth=0: expected 1 to 16"):
        CatBoostModel(depth=0).fit(X, y)
    with pytest.raises(UsageError, match="option inner_pct=0.6: expected a share"):
        CatBoostModel(inner_pct=0.6).fit(X, y)
