"""What both fastai models share: epochs recorded, Ctrl-C keeps the lowest-loss epoch, a time limit keeps time."""

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import Clock

from pipeline.core import epochs, progress
from pipeline.core.errors import UsageError
from pipeline.models import _fastai

DIGITS = Path(__file__).parents[1] / "fixtures" / "digit-recognizer"


def _table(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X @ rng.normal(size=d) + rng.normal(size=n) > 0).astype(np.int64)
    return X, y


def _digits():
    train = np.loadtxt(DIGITS / "train.csv", delimiter=",", skiprows=1, dtype=np.int64)
    return train[:, 1:].astype(np.uint8).reshape(-1, 28, 28), train[:, 0]


def _cnn_loss(model, X, y):
    """The CNN's label-smoothed cross-entropy of its predictions (fastai's LabelSmoothingCrossEntropy)."""
    logp = np.log(model.predict_proba(X).astype(np.float64))
    eps, classes = model.label_smoothing, logp.shape[1]
    return float(np.mean(-logp.sum(1)) * eps / classes + (1 - eps) * np.mean(-logp[np.arange(len(y)), y]))


def _tabular_loss(model, X, y):
    """Cross-entropy of the tabular model's predictions."""
    return float(np.mean(-np.log(model.predict_proba(X).astype(np.float64))[np.arange(len(y)), y]))


def _tabular():
    from pipeline.models.tabular import TabularModel

    X, y = _table()  # a high rate on 100 rows: the validation loss jumps about, epoch 3 is the best of 1-5
    return TabularModel(epochs=8, lr=0.3, bs=16, dropout=0.0, wd=0.0), X[:100], y[:100], X[300:], y[300:], \
        _tabular_loss, 5


def _cnn():
    from pipeline.models.cnn import CNNModel

    X, y = _digits()  # of epochs 1-4, 1 has the lowest validation loss and 4 the highest accuracy
    return CNNModel(epochs=6, lr=0.05, bs=32, width=4, full_res=False, threads=1), X[:250], y[:250], X[250:], \
        y[250:], _cnn_loss, 4


@pytest.mark.slow
@pytest.mark.parametrize("make", [_tabular, _cnn], ids=["tabular", "cnn"])
def test_ctrl_c_stops_at_the_epoch_and_keeps_the_lowest_validation_loss(make):
    model, X, y, Xv, yv, loss, stop = make()
    before = signal.getsignal(signal.SIGINT)

    def press_ctrl_c(record):
        if record.epoch == stop:
            os.kill(os.getpid(), signal.SIGINT)  # as the terminal sends it: the fit ends at the next batch

    model.fit(X, y, Xv, yv, on_epoch=press_ctrl_c)
    assert model.interrupted_ and [e.epoch for e in model.history_] == list(range(1, stop + 1))
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C acts as before once the fit is over
    best = epochs.best(model.history_)
    assert best is not None and best.epoch != stop, "pick settings whose last epoch is not the best"
    assert loss(model, Xv, yv) == pytest.approx(best.valid_loss, rel=1e-3)


@pytest.mark.slow
def test_a_fit_without_validation_rows_records_train_loss_only_and_stops_on_ctrl_c():
    model, X, y, *_ = _cnn()
    model.epochs = 2
    seen = []

    def interrupt(record):
        seen.append(record)
        raise KeyboardInterrupt  # a Ctrl-C that lands in a hook counts as Ctrl-C

    model.fit(X, y, on_epoch=interrupt)
    assert model.interrupted_ and model.history_ == seen and len(seen) == 1
    assert seen[0].figures().keys() == {"train_loss"}  # no figures from a sliver of its own training rows


@pytest.mark.slow
@pytest.mark.parametrize("make", [_tabular, _cnn], ids=["tabular", "cnn"])
def test_a_time_limit_long_enough_trains_every_epoch_exactly_as_without_one(make):
    model, X, y, Xv, yv, *_ = make()
    model.epochs = 3
    heard = []
    plain = model.fit(X, y, Xv, yv).predict_proba(Xv)
    with progress.listening(lambda *event: heard.append(event) if event[0] == "epochs" else None):
        model.time_limit = 1e6
        timed = model.fit(X, y, Xv, yv).predict_proba(Xv)
    assert heard == [("epochs", 3, 3)] and len(model.history_) == 3
    np.testing.assert_array_equal(timed, plain)  # timing the pace moved no weights and no random draws


def counting_clock(model, monkeypatch) -> Clock:
    """A clock a second later at every reading, for the fit and its probe: the pace and the deadline become counts."""
    clock = Clock(1.0)
    monkeypatch.setattr(_fastai, "time", clock)
    monkeypatch.setattr(sys.modules[type(model).__module__], "time", clock)  # where the fit's clock starts
    return clock


@pytest.mark.slow
@pytest.mark.parametrize("make", [_tabular, _cnn], ids=["tabular", "cnn"])
def test_a_time_limit_trains_the_epochs_the_pace_allows_and_stops_at_its_deadline(make, monkeypatch):
    model, X, y, Xv, yv, *_ = make()
    clock = counting_clock(model, monkeypatch)
    # the probe times each step and the validation batch at a second (two readings); the fit's batches read the clock
    # once each, a second a batch; as if the probe judged epochs 4x too fast, the deadline, not the estimate, ends it
    monkeypatch.setattr(_fastai, "EPOCH_OVERHEAD", 0.25)
    heard = []
    model.time_limit = 28.0  # 20 readings before the fit starts: 9 seconds for epochs judged at about 2 s
    with progress.listening(lambda *event: heard.append(event) if event[0] in ("epochs", "stopped") else None):
        model.fit(X, y, Xv, yv)
    [(_, fitting, asked), stopped] = heard
    assert asked == model.epochs and 1 <= fitting < asked  # the probe judged that not all of them fit
    assert 1 <= len(model.history_) < fitting and model.out_of_time_ and not model.interrupted_
    assert stopped == ("stopped", len(model.history_), fitting)
    assert clock.now <= 1 + 28.0 + 1  # the clock passed the limit by one reading at most: the fit stopped there
    assert model.predict_proba(Xv).shape == (len(Xv), len(np.unique(y)))


@pytest.mark.parametrize("make", [_tabular, _cnn], ids=["tabular", "cnn"])
def test_a_time_limit_shorter_than_one_epoch_is_refused_before_training(make, monkeypatch):
    model, X, y, Xv, yv, *_ = make()
    counting_clock(model, monkeypatch)
    model.time_limit = 3.0
    with pytest.raises(UsageError, match=r"^--time-limit: one epoch takes about \d+\.\d s here, and this fit has "
                                         r"0\.0 s left; give more seconds, or train without --time-limit$"):
        model.fit(X, y, Xv, yv)
    assert model.history_ == []


@pytest.mark.slow
@pytest.mark.parametrize("make", [_tabular, _cnn], ids=["tabular", "cnn"])
def test_a_deadline_before_the_first_epoch_ends_is_an_error_not_a_model(make, monkeypatch):
    model, X, y, Xv, yv, *_ = make()
    counting_clock(model, monkeypatch)
    monkeypatch.setattr(_fastai, "EPOCH_OVERHEAD", 0.01)  # as if the machine slowed down after the pace was timed
    model.time_limit = 22.0  # 20 readings before the fit: 2 batches of a second each, then the deadline
    with pytest.raises(UsageError, match=r"^--time-limit: the time ran out before the first of \d+ epochs ended "):
        model.fit(X, y, Xv, yv)


@pytest.mark.slow
def test_a_time_limit_copes_with_one_row_and_with_no_end_in_sight():
    from pipeline.models.tabular import TabularModel

    X, y = _table()
    one = TabularModel(epochs=2, time_limit=100.0).fit(X[:1], y[:1])  # no whole batch of two: nothing to time
    assert one.predict_proba(X[:3]).shape == (3, 1)
    huge = TabularModel(epochs=2, time_limit=1e308).fit(X[:100], y[:100], X[300:], y[300:])
    assert len(huge.history_) == 2 and not huge.out_of_time_


@pytest.mark.slow
def test_ctrl_c_while_the_pace_is_timed_stops_before_any_training(monkeypatch):
    model, X, y, Xv, yv, *_ = _cnn()
    timed = _fastai.seconds

    def pressed_once(work):
        monkeypatch.setattr(_fastai, "seconds", timed)
        os.kill(os.getpid(), signal.SIGINT)  # as the terminal sends it, in the middle of the probe
        return timed(work)

    monkeypatch.setattr(_fastai, "seconds", pressed_once)
    model.time_limit = 1e6
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, Xv, yv)
    assert model.history_ == [] and model.net_ is None  # no network kept
