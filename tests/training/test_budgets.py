"""What a run may spend: `threads` (each model uses that many and no more) and `time_limit` (never overrun by 10 %)."""

import dataclasses
import json

import numpy as np
import pytest
from conftest import Clock
from threadpoolctl import threadpool_info

from pipeline.core import competitions, dataset, threads
from pipeline.core.errors import UsageError
from pipeline.core.workspace import Workspace
from pipeline.models import _boosting, _torch, blend, sklearn_models
from pipeline.training import records, trainer

TITANIC = competitions.get("titanic")
TWO = pytest.mark.skipif(threads.available() < 2, reason="needs two cores to tell one thread from all")


def openmp_threads() -> set[int]:
    """The thread counts of every OpenMP runtime loaded in this process."""
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "openmp"}


@pytest.mark.slow
@TWO
@pytest.mark.parametrize("n", [1, 2])
def test_every_model_runs_on_the_threads_it_is_given(fetched, monkeypatch, n):
    ws = Workspace(fetched)
    seen: dict[str, object] = {}
    fit = sklearn_models.SkGBM._fit
    import sklearn.ensemble  # noqa: F401  scikit-learn's OpenMP runtime loaded, to see it given back

    before = openmp_threads()

    def watched(self, *args):
        seen["sk-gbm"] = openmp_threads()
        return fit(self, *args)

    monkeypatch.setattr(sklearn_models.SkGBM, "_fit", watched)
    run = trainer.train(TITANIC, ws, records.TrainConfig(model="sk-gbm", params={"max_iter": 5}, threads=n))
    assert seen["sk-gbm"] == {n} and run.config.threads == n
    assert json.loads((run.folder / "config.json").read_text())["threads"] == n
    assert openmp_threads() == before  # given back after the run

    run = trainer.train(TITANIC, ws, records.TrainConfig(model="lgbm", params={"n_estimators": 5}, threads=n))
    assert f"[num_threads: {n}]" in (run.folder / "lgbm.txt").read_text()  # LightGBM's own record of its threads

    import torch

    monkeypatch.setattr(_torch, "SMALL_TABLE", 0)  # fixtures are small tables, which always train on one thread
    torch_threads = []
    trainer.train(TITANIC, ws, records.TrainConfig(model="linear", params={"epochs": 2}, threads=n),
                  on_epoch=lambda _: torch_threads.append(torch.get_num_threads()))
    assert torch_threads == [n, n]


def test_threads_default_to_omp_num_threads_else_the_idle_cores_and_refuse_negatives(fetched, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    lgbm = records.TrainConfig(model="lgbm", params={"n_estimators": 5})
    run = trainer.train(TITANIC, Workspace(fetched), lgbm)  # a small table: one thread unless told otherwise
    assert run.config.threads == 1 and run.config.params["threads"] == 1
    run = trainer.train(TITANIC, Workspace(fetched), dataclasses.replace(lgbm, threads=2))
    assert run.config.threads == 2
    monkeypatch.setattr(threads, "SMALL_TABLE", 0)  # as if the table were big: the cores idle at the start
    monkeypatch.setattr(threads, "available", lambda: 3)
    for busy, expected in ((0.0, 3), (1.2, 2)):  # on a busy machine a second thread waits for a core
        monkeypatch.setattr(threads, "busy_at_start", lambda busy=busy: busy)
        run = trainer.train(TITANIC, Workspace(fetched), lgbm)
        assert run.config.threads == expected and run.config.params["threads"] == expected
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.resolve(0) == 3 and threads.resolve(2) == 2
    with pytest.raises(UsageError, match=r"--threads -1: expected a whole number of threads, or 0 for the idle cores"):
        records.TrainConfig(model="lgbm", threads=-1).check()


def lgbm_rounds(run):
    """Boosting rounds each fold model kept, from the run folder."""
    return [json.loads(p.read_text())["rounds"] for p in sorted(run.folder.glob("fold*/lgbm.json"))]


@pytest.mark.slow
def test_a_time_limit_is_kept_with_fewer_rounds_when_short(fetched, monkeypatch):
    # how close a run comes to its limit on a real clock is measured by benchmarks/time_limit.py
    ws = Workspace(fetched)
    slow = {"learning_rate": 0.0005, "patience": 0, "n_estimators": 1_000_000, "num_leaves": 63, "min_data_in_leaf": 2}
    data = dataset.load_dataset(TITANIC, ws)
    rounds = {}
    for limit in (5.0, 10.0):
        clock = Clock(0.05)  # each LightGBM round reads the clock once: 0.05 s a round
        monkeypatch.setattr(trainer, "time", clock)
        monkeypatch.setattr(_boosting, "time", clock)  # the round clock of lgbm's deadline
        cfg = records.TrainConfig(model="lgbm", params=slow, folds=3, time_limit=limit, threads=1)
        run = trainer.train(TITANIC, ws, cfg, data=data)
        rounds[limit] = sum(lgbm_rounds(run))
        assert run.config.time_limit == limit
        assert {json.loads(p.read_text())["stopped_by"] for p in run.folder.glob("fold*/lgbm.json")} == {"time"}
        assert clock.now <= limit  # the clock the run read never passed its limit
    assert 0 < rounds[5.0] < rounds[10.0]


def test_a_blend_shares_its_time_among_the_members_that_keep_time(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 6)).astype(np.float32)
    y = X @ rng.normal(size=6) + rng.normal(size=2000)
    slow = {"learning_rate": 0.0005, "patience": 0, "n_estimators": 1_000_000}
    monkeypatch.setitem(blend.DEFAULTS, "regression", (("sk-ridge", {}), ("lgbm", slow)))
    model = blend.BlendModel(time_limit=1.0, threads=1)
    clock = Clock(0.05)
    monkeypatch.setattr(blend, "time", clock)
    monkeypatch.setattr(_boosting, "time", clock)
    t0 = clock.monotonic()
    model.fit(X, y)
    assert clock.now - t0 <= 1.1
    ridge, boosted = model.models_
    # two timed fits: one judged on held rows, then the one on all rows, each given half of what was left
    assert "time_limit" not in ridge.params() and 0.3 < boosted.time_limit <= 0.5 and boosted.stopped_by_ == "time"
    assert boosted.threads == 1


def test_a_time_limit_needs_a_model_that_keeps_time(fetched):
    cfg = records.TrainConfig(model="linear", time_limit=5)
    with pytest.raises(UsageError, match=r"--time-limit: model 'linear' cannot keep to a time budget; use lgbm, "
                                         r"catboost, blend, cnn or tabular, or train without --time-limit"):
        trainer.train(TITANIC, Workspace(fetched), cfg)
    with pytest.raises(UsageError, match=r"--time-limit -1: expected seconds"):
        records.TrainConfig(model="lgbm", time_limit=-1).check()


@pytest.mark.slow
def test_a_cnn_run_shares_its_time_limit_with_its_fit_and_records_it(fetched):
    digits = competitions.get("digit-recognizer")
    cfg = records.TrainConfig(model="cnn", params={"epochs": 2, "width": 4, "bs": 32}, time_limit=600, threads=1)
    seen = []
    run = trainer.train(digits, Workspace(fetched), cfg, on_epoch=seen.append)
    assert run.config.time_limit == 600 and len(seen) == 2  # two epochs of a tiny network fit in ten minutes
    config = json.loads((run.folder / "config.json").read_text())
    assert config["time_limit"] == 600


@pytest.mark.slow
@pytest.mark.parametrize("cut", ["refit", "both"])
def test_a_fit_cut_by_its_deadline_is_recorded_and_a_cut_refit_does_not_submit(fetched, monkeypatch, cut):
    from conftest import cut_tabular_fits

    from pipeline.training.listing import model_text
    from pipeline.training.records import read_run

    cut_tabular_fits(monkeypatch, lambda valid: valid is None or cut == "both")  # the refit has no validation rows
    cfg = records.TrainConfig(model="tabular", params={"epochs": 2}, folds=0, full=True, time_limit=600, threads=1)
    run = trainer.train(TITANIC, Workspace(fetched), cfg)
    assert run.metrics.submits_with == "model" and run.metrics.full_epochs is None
    saved = read_run(run.folder)
    assert saved.metrics.out_of_time == (cut == "both")
    assert model_text(saved).endswith("(cut at time limit)") == (cut == "both")


def test_a_blend_shares_its_time_after_its_members_are_imported(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    slow = {"learning_rate": 0.0005, "patience": 0, "n_estimators": 1_000_000}
    clock = Clock(0.05)
    monkeypatch.setattr(blend, "time", clock)
    monkeypatch.setattr(_boosting, "time", clock)
    member = blend.BlendModel._member

    def importing(self, name, options):  # the first member built imports its module: torch and fastai take seconds
        if not getattr(importing, "done", False):
            importing.done, clock.now = True, clock.now + 5.0  # type: ignore[attr-defined]
        return member(self, name, options)

    monkeypatch.setattr(blend.BlendModel, "_member", importing)
    monkeypatch.setitem(blend.DEFAULTS, "classes", (("sk-logistic", {}), ("lgbm", slow)))
    model = blend.BlendModel(time_limit=1.0, threads=1).fit(X, y)
    boosted = model.models_[1]
    assert 0.8 < boosted.time_limit <= 1.0  # the one timed member got the blend's second, not what the import left


class _Slept:
    """A monotonic clock that stands still until the machine 'sleeps' past any deadline."""

    now = 0.0
    perf_counter = staticmethod(__import__("time").perf_counter)

    def monotonic(self) -> float:
        """The time, as set."""
        return self.now


@pytest.mark.slow
def test_no_time_left_after_the_folds_keeps_the_validated_run_without_a_refit(fetched, monkeypatch):
    clock = _Slept()
    monkeypatch.setattr(trainer, "time", clock)
    validate = trainer.validate

    def then_sleep(*args, **kwargs):  # the laptop slept (or was stopped) once the folds were done
        fitted = validate(*args, **kwargs)
        clock.now += 10_000
        return fitted

    monkeypatch.setattr(trainer, "validate", then_sleep)
    said = []
    cfg = records.TrainConfig(model="lgbm", params={"n_estimators": 5}, folds=0, full=True, time_limit=600, threads=1)
    run = trainer.train(TITANIC, Workspace(fetched), cfg, on_stage=lambda text, _epochs: said.append(text))
    assert run.metrics.submits_with == "model" and run.metrics.full_epochs is None
    assert "no time left to refit: submissions use the validated model" in said


@pytest.mark.slow
def test_a_blend_with_a_member_cut_at_its_deadline_is_cut_too(monkeypatch):
    from conftest import cut_tabular_fits

    cut_tabular_fits(monkeypatch)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = blend.BlendModel(members="sk-logistic,tabular", threads=1).fit(X, y)
    assert model.out_of_time_ and not model.models_[0].out_of_time_


def test_a_fit_limit_beside_the_run_limit_is_refused_not_overridden(titanic_only, kc):
    result = kc("train", "titanic", "--model", "lgbm", "-p", "time_limit=5", "--time-limit", "20", ws=titanic_only)
    assert result.exit_code == 1 and result.stderr.startswith("Error: -p time_limit and --time-limit: give one")
    assert not (titanic_only / "competitions/titanic/runs").exists()


def test_a_limit_spent_before_training_began_says_what_spent_it(titanic_only, kc):
    result = kc("train", "titanic", "--model", "lgbm", "--time-limit", "1.7", ws=titanic_only)  # 0.03 s after reserves
    assert result.exit_code == 1
    assert result.stderr == ("Error: --time-limit: the time ran out before training began (starting up took it all: "
                             "loading the data and the model's libraries, and the reserve for saving the run); give "
                             "more seconds\n")


def test_a_limit_spent_by_the_first_folds_says_so(monkeypatch):
    from conftest import Clock

    monkeypatch.setattr(trainer, "time", Clock(1.0))  # each reading one second on
    assert trainer.fit_budget(10.0, 4, (1, 5)) == pytest.approx((10.0 - 1.0) / 4)
    with pytest.raises(UsageError, match=r"^--time-limit: the time ran out before fold 3 of 5 began \(the first 2 "
                                         r"took it all\); give more seconds, or fewer --folds$"):
        trainer.fit_budget(1.5, 3, (2, 5))


def test_a_models_thread_option_is_recorded_as_used_and_never_searched(fetched, monkeypatch):
    from pipeline.models.lgbm import LGBMModel
    from pipeline.tuning.space import parse_dimension

    monkeypatch.setattr(threads, "available", lambda: 2)
    cfg = records.TrainConfig(model="lgbm", params={"n_estimators": 5, "threads": "1000000000000"})
    run = trainer.train(TITANIC, Workspace(fetched), cfg)  # 64 on 2 cores ran 64; 10**12 crashed catboost
    assert run.config.params["threads"] == 2
    assert json.loads((run.folder / "config.json").read_text())["params"]["threads"] == 2
    for text in ("1:8", "1|2|4"):  # capped ends would search 1:2 unawares
        with pytest.raises(UsageError, match=r"-p threads=.*: threads change how fast a trial runs"):
            parse_dimension(LGBMModel, "threads", text)
