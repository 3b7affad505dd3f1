"""Epoch records: their figures, their JSON (as kc has always written it), and the one rule for the best epoch."""

import pytest

from pipeline.core.epochs import Epoch, best


def test_an_epoch_holds_only_the_figures_it_has():
    validated = Epoch(3, 0.5, 0.4, valid_accuracy=0.9)
    assert validated.figures() == {"train_loss": 0.5, "valid_loss": 0.4, "valid_accuracy": 0.9}
    assert validated.metric == ("valid_accuracy", 0.9)
    assert Epoch(1, 0.7).figures() == {"train_loss": 0.7} and Epoch(1, 0.7).metric is None
    assert Epoch(2, 0.3, 0.2, valid_rmse=1.5).metric == ("valid_rmse", 1.5)


def test_an_epoch_round_trips_through_the_json_kc_has_always_written():
    old = {"epoch": 2, "train_loss": 0.5, "valid_loss": 0.4, "valid_rmse": 1234.5}  # what kc wrote as a dict
    assert Epoch.from_json(old) == Epoch(2, 0.5, 0.4, valid_rmse=1234.5)
    assert Epoch.from_json(old).to_json() == old
    assert Epoch.from_json({"epoch": 1, "train_loss": 1, "valid_loss": None}) == Epoch(1, 1.0)


@pytest.mark.parametrize("bad", [{"loss": 0.5}, {"epoch": 1}, {"epoch": 1, "train_loss": "x"},
                                 {"epoch": 1, "train_loss": float("nan")}, {"epoch": True, "train_loss": 0.1},
                                 {"epoch": 1, "train_loss": 0.1, "valid_f2": 0.3}, [1, 0.5]])
def test_what_is_no_epoch_is_refused(bad):
    with pytest.raises(ValueError, match="not an epoch record"):
        Epoch.from_json(bad)


def test_the_best_epoch_has_the_lowest_validation_loss_the_first_of_equals():
    history = [Epoch(1, 0.9, 0.6, valid_accuracy=0.7), Epoch(2, 0.5, 0.3, valid_accuracy=0.8),
               Epoch(3, 0.4, 0.3, valid_accuracy=0.85), Epoch(4, 0.3, 0.5, valid_accuracy=0.9)]
    assert best(history) is history[1]  # not epoch 4, the most accurate
    assert best([Epoch(1, 0.5), Epoch(2, 0.4)]) is None and best([]) is None
