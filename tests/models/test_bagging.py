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
    with pytest.raises(UsageError, match="option bags=-1"):
        LGBMModel(bags=-1).fit(X, y)
