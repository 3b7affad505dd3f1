"""Interrupted runs are marked and never submitted unless named; a blend lists the members and weights it used."""

from __future__ import annotations

import json

import pytest

from pipeline.core import competitions
from pipeline.core.workspace import Workspace
from pipeline.training import listing, trainer

TITANIC = competitions.get("titanic")


def _interrupt(run: trainer.Run) -> None:
    """Record the run as Ctrl-C leaves one (metrics.json says interrupted)."""
    path = run.folder / "metrics.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"interrupted": True}))


def test_an_interrupted_run_is_marked_and_submitted_only_when_named(titanic_only, kc):
    ws = Workspace(titanic_only)
    cut = trainer.train(TITANIC, ws, trainer.TrainConfig("knn", {"k": 5}))
    _interrupt(cut)
    alone = kc("submit", "titanic", ws=titanic_only)
    assert alone.exit_code == 1
    assert alone.stderr == (f"Error: every run of titanic was interrupted: name one with --run {cut.run_id}, or train "
                            "again with `kc train titanic`\n")
    named = kc("submit", "titanic", "--run", cut.run_id, ws=titanic_only)
    assert named.exit_code == 0, named.output
    done = trainer.train(TITANIC, ws, trainer.TrainConfig("knn", {"k": 25}))
    assert trainer.get_run(TITANIC, ws).run_id == done.run_id
    listed = kc("runs", "titanic", ws=titanic_only).stdout
    assert "knn (interrupted)" in listed and listed.count("(interrupted)") == 1


@pytest.mark.slow
def test_a_blend_lists_its_members_and_weights(titanic_only):
    run = trainer.train(TITANIC, Workspace(titanic_only), trainer.TrainConfig("blend"))
    assert run.config.params["members"] == ""  # what it was given: the defaults
    assert listing.options_text(run, TITANIC) == "members=sk-logistic,sk-gbm,catboost weights=0.33,0.33,0.33"
    assert listing.model_text(run) == "blend"
