"""Boosted models average several boosters: as many as `bags` asks, or as a time limit leaves room for."""

import json
import shutil

import numpy as np
import pytest
from conftest import Clock
from test_lgbm import classes_table, values_table

from pipeline.core.errors import DataError, UsageError
from pipeline.models import _boosting
from pipeline.models.cat import CatBoostModel
from pipeline.models.lgbm import LGBMModel

FAST = {LGBMModel: {"learning_rate": 0.3, "patience": 10}, CatBoostModel: {"learning_rate": 0.3, "patience": 10}}


@pytest.mark.parametrize("cls", [LGBMModel, CatBoostModel])
def test_bags_average_boosters_of_their_own_seeds_and_survive_a_round_trip(cls, tmp_path):
    X, y = classes_table(n=400, d=5, k=3, seed=3)
    model = cls(bags=3, threads=1, **FAST[cls]).fit(X, y)
    assert [b.seed for b in model._boosters()] == [0, 1, 2]
    one = [b._proba(X) for b in model._boosters()]
    assert not np.array_equal(one[0], one[1])  # another seed: another inner split and other draws
    assert np.allclose(model.predict_proba(X), np.mean(one, axis=0), atol=1e-6)
    model.save(tmp_path)
    assert json.loads((tmp_path / _boosting.BAGS).read_text()) == {"boosters": 3}
    again = cls().load(tmp_path)
    assert len(again.bags_) == 2 and np.array_equal(again.predict_proba(X), model.predict_proba(X))
    shutil.rmtree(tmp_path / "bag2")
    with pytest.raises(DataError, match=f"run {tmp_path.name}'s bag2 is missing"):
        cls().load(tmp_path)


def test_a_bag_of_another_task_is_refused(tmp_path):
    X, y = classes_table(n=300, d=5, k=3, seed=4)
    LGBMModel(bags=2, threads=1, **FAST[LGBMModel]).fit(X, y).save(tmp_path)
    Xv, yv = values_table(n=300, d=5)
    shutil.rmtree(tmp_path / "bag1")
    (tmp_path / "bag1").mkdir()
    LGBMModel(threads=1, **FAST[LGBMModel]).fit(Xv, yv).save(tmp_path / "bag1")
    with pytest.raises(DataError, match="bag1 does not match its first booster"):
        LGBMModel().load(tmp_path)


def test_a_long_time_limit_buys_more_boosters_and_a_short_one_only_the_first(monkeypatch):
    # on a clock that moves 0.01 s a read (each round reads it once); benchmarks/time_limit.py uses a real one
    X, y = values_table(n=2000, d=6, seed=5)
    clock = Clock(0.01)
    monkeypatch.setattr(_boosting, "time", clock)
    LGBMModel(bags=1, time_limit=1000.0, threads=1, **FAST[LGBMModel]).fit(X, y)
    first = clock.now  # what one booster costs on this clock
    for limit, boosters in ((1.5 * first, 1), (20 * first, _boosting.MAX_BAGS)):
        clock.now = 0.0
        model = LGBMModel(time_limit=limit, threads=1, **FAST[LGBMModel]).fit(X, y)
        assert len(model._boosters()) == boosters and clock.now <= limit
    clock.now = 0.0
    assert len(LGBMModel(threads=1, **FAST[LGBMModel]).fit(X, y)._boosters()) == 1  # no limit, no bags asked: one


def test_a_negative_bag_count_is_refused():
    X, y = values_table(n=100)
    with pytest.raises(UsageError, match=r"option bags=-1: expected 0 \(as time allows\) or 1 to 100 boosters"):
        LGBMModel(bags=-1).fit(X, y)


def test_a_bag_of_another_width_is_refused(tmp_path):
    X, y = classes_table(n=300, d=5, k=3, seed=4)
    LGBMModel(bags=2, threads=1, **FAST[LGBMModel]).fit(X, y).save(tmp_path)
    shutil.rmtree(tmp_path / "bag1")
    (tmp_path / "bag1").mkdir()
    LGBMModel(threads=1, **FAST[LGBMModel]).fit(X[:, :3], y).save(tmp_path / "bag1")
    with pytest.raises(DataError, match="bag1 does not match its first booster"):
        LGBMModel().load(tmp_path)


def test_a_compacted_booster_predicts_as_before():
    X, y = classes_table(n=400, d=5, k=3, seed=6)
    model = LGBMModel(threads=1, **FAST[LGBMModel]).fit(X, y)
    before = model.predict_proba(X)
    model._compact()
    assert np.array_equal(model.predict_proba(X), before)


def test_a_refit_cut_short_by_the_time_limit_says_so_and_no_booster_follows(monkeypatch):
    X, y = values_table(n=3000, d=6, seed=8)
    clock = Clock(0.01)
    monkeypatch.setattr(_boosting, "time", clock)
    whole = LGBMModel(bags=1, time_limit=1e6, threads=1, **FAST[LGBMModel]).fit(X, y)
    inner = clock.now - whole.best_rounds_ * 0.01  # the refit reads the clock once a round
    clock.now = 0.0
    cut = LGBMModel(time_limit=inner + whole.best_rounds_ * 0.005, threads=1, **FAST[LGBMModel]).fit(X, y)
    assert cut.stopped_by_ == "time" and cut.best_rounds_ < whole.best_rounds_ and not cut.bags_


@pytest.mark.parametrize("cls", [LGBMModel, CatBoostModel])
def test_fits_of_refit_rows_or_more_keep_their_early_stopped_model(cls):
    X, y = values_table(n=500, seed=6)
    kept = cls(refit_rows=500, threads=1, **FAST[cls]).fit(X, y)
    refitted = cls(refit_rows=501, threads=1, **FAST[cls]).fit(X, y)
    assert refitted.best_rounds_ == round(kept.best_rounds_ / 0.9)


def test_errors_name_the_run_and_the_path_inside_it(tmp_path):
    from pathlib import Path

    from pipeline.models.base import saved_file

    run = Path("/ws/competitions/x/runs/20261201-050000-lgbm")
    assert saved_file(run, "lgbm.txt") == "run 20261201-050000-lgbm's lgbm.txt"
    assert saved_file(run / "fold0" / "bag1", "lgbm.txt") == "run 20261201-050000-lgbm's fold0/bag1/lgbm.txt"
    assert saved_file(Path("/elsewhere/model"), "lgbm.txt") == "run model's lgbm.txt"
    X, y = classes_table(n=300, d=5, k=3, seed=4)
    fold = tmp_path / "runs" / "20261201-050000-lgbm" / "fold0"
    fold.mkdir(parents=True)
    LGBMModel(bags=2, threads=1, **FAST[LGBMModel]).fit(X, y).save(fold)
    (fold / "bag1" / "lgbm.txt").write_text("tree\n")
    with pytest.raises(DataError, match=r"^run 20261201-050000-lgbm's fold0/bag1/lgbm.txt does not describe"):
        LGBMModel().load(fold)


@pytest.mark.parametrize("text", ['{"boosters": true}', '{"boosters": ' + "[" * 100_000 + "]" * 100_000 + "}"])
def test_a_hand_edited_booster_count_is_one_line(text, tmp_path):
    (tmp_path / _boosting.BAGS).write_text(text)
    with pytest.raises(DataError, match="bags.json cannot be read"):
        _boosting.boosters(tmp_path)
