"""`kc train --tensorboard`: event files TensorBoard reads, from fastai's callback and from kc's own models."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core import competitions, tracking
from pipeline.core.workspace import Workspace
from pipeline.training import records, trainer

TITANIC = competitions.get("titanic")


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in the event files under `folder`, as TensorBoard itself reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
def test_hand_written_models_log_their_epochs(titanic_only):
    cfg = records.TrainConfig(model="linear", params={"epochs": 4}, folds=2, tensorboard=True)
    run = trainer.train(TITANIC, Workspace(titanic_only), cfg)
    events = run.folder / "tensorboard"
    assert sorted(p.name for p in events.iterdir()) == ["fold1", "fold2"]
    logged = scalars(events / "fold1")
    assert [step for step, _ in logged["train_loss"]] == [1, 2, 3, 4]
    history = {r.epoch: r for r in run.metrics.history}  # the first fold's epochs, as the run recorded them
    for step, value in logged["valid_loss"]:
        assert value == pytest.approx(history[step].valid_loss, rel=1e-6)
    assert {"accuracy", "valid_loss", "train_loss"} <= set(logged)
    assert not list(run.folder.parent.glob(".tensorboard.*"))  # the staging folder moved into the run


@pytest.mark.slow
def test_fastai_models_log_through_fastais_callback(titanic_only):
    cfg = records.TrainConfig(model="tabular", params={"epochs": 2, "bs": 32}, tensorboard=True)
    run = trainer.train(TITANIC, Workspace(titanic_only), cfg)
    logged = scalars(run.folder / "tensorboard" / "split")
    assert len(logged["train_loss"]) > 2  # fastai logs the smoothed loss every batch, not every epoch
    assert "lr_0" in logged  # and its schedule's hyper-parameters
    assert [v for _, v in logged["valid_loss"]] == pytest.approx([r.valid_loss for r in run.metrics.history],
                                                                 rel=1e-5)


def test_without_tensorboard_installed_it_says_how(monkeypatch, titanic_only):
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    cfg = records.TrainConfig(model="linear", params={"epochs": 1}, tensorboard=True)
    with pytest.raises(tracking.UsageError, match=r"pip install tensorboard"):
        trainer.train(TITANIC, Workspace(titanic_only), cfg)
    assert not (titanic_only / "competitions/titanic/runs").exists() or not list(
        (titanic_only / "competitions/titanic/runs").iterdir())

