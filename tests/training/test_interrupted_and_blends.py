"""Interrupted runs are marked and never submitted unless named; a blend lists the members and weights it used."""

from __future__ import annotations

import json

import pytest

from pipeline.core import competitions
from pipeline.core.workspace import Workspace
from pipeline.training import listing, records, trainer

TITANIC = competitions.get("titanic")


def _interrupt(run: records.Run) -> None:
    """Record the run as Ctrl-C leaves one (metrics.json says interrupted)."""
    path = run.folder / "metrics.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"interrupted": True}))


def test_an_interrupted_run_is_marked_and_submitted_only_when_named(titanic_only, kc):
    ws = Workspace(titanic_only)
    cut = trainer.train(TITANIC, ws, records.TrainConfig("knn", {"k": 5}))
    _interrupt(cut)
    alone = kc("submit", "titanic", ws=titanic_only)
    assert alone.exit_code == 1
    assert alone.stderr == (f"Error: every run of titanic was interrupted: name one with --run {cut.run_id}, or train "
                            "again with `kc train titanic`\n")
    named = kc("submit", "titanic", "--run", cut.run_id, ws=titanic_only)
    assert named.exit_code == 0, named.output
    done = trainer.train(TITANIC, ws, records.TrainConfig("knn", {"k": 25}))
    assert records.get_run(TITANIC, ws).run_id == done.run_id
    listed = kc("runs", "titanic", ws=titanic_only).stdout
    assert "knn (interrupted)" in listed and listed.count("(interrupted)") == 1


@pytest.mark.slow
def test_a_blend_lists_its_members_and_weights(titanic_only):
    run = trainer.train(TITANIC, Workspace(titanic_only), records.TrainConfig("blend"))
    assert run.config.params["members"] == ""  # what it was given: the defaults
    assert listing.options_text(run, TITANIC) == "members=sk-logistic,sk-gbm,catboost weights=0.33,0.33,0.33"
    assert listing.model_text(run) == "blend"


def _record_members(run: records.Run, members: str) -> None:
    """Rewrite the run's config.json as if it had been given `members`."""
    path = run.folder / "config.json"
    saved = json.loads(path.read_text())
    path.write_text(json.dumps(saved | {"params": saved["params"] | {"members": members}}))


def test_a_default_blend_saved_with_the_defaults_of_an_earlier_kc_still_loads_and_lists(titanic_only, kc):
    # a default blend from before CatBoost joined had two members: saved so, it loads, predicts and lists as it ran
    ws = Workspace(titanic_only)
    run = trainer.train(TITANIC, ws, records.TrainConfig("blend", {"members": "sk-logistic,sk-gbm"}))
    _record_members(run, "")
    old = records.get_run(TITANIC, ws, run.run_id)
    assert old.config.params["members"] == ""
    assert listing.options_text(old, TITANIC) == "members=sk-logistic,sk-gbm weights=0.50,0.50"
    assert kc("submit", "titanic", "--run", run.run_id, ws=titanic_only).exit_code == 0


def test_a_blend_named_with_other_members_than_it_saved_is_refused(titanic_only, kc):
    ws = Workspace(titanic_only)
    run = trainer.train(TITANIC, ws, records.TrainConfig("blend", {"members": "sk-logistic,knn"}))
    _record_members(run, "sk-logistic,sk-gbm")
    refused = kc("submit", "titanic", "--run", run.run_id, ws=titanic_only)
    assert refused.exit_code == 1 and "the blend's saved members cannot be loaded" in refused.stderr


def test_shorthand_weights_list_as_used_and_repeat_their_spelled_out_form(titanic_only):
    ws = Workspace(titanic_only)
    members = "sk-logistic,knn,linear"
    short = trainer.train(TITANIC, ws, records.TrainConfig("blend", {"members": members, "weights": "2,1"}))
    assert listing.options_text(short, TITANIC) == f"members={members} weights=0.50,0.25,0.25"
    spelled = trainer.train(TITANIC, ws, records.TrainConfig("blend", {"members": members, "weights": "2,1,1"}))
    other = trainer.train(TITANIC, ws, records.TrainConfig("blend", {"members": members, "weights": "1,2"}))
    assert listing.repeats([short, spelled, other], TITANIC) == {spelled.run_id: short.run_id}


def test_kc_train_says_what_a_blend_blended(titanic_only, kc):
    shown = kc("train", "titanic", "--model", "blend", "-p", "members=sk-logistic,knn", "-p", "weights=3,1",
               ws=titanic_only)
    assert shown.exit_code == 0, shown.output
    assert "blend as trained: members=sk-logistic,knn weights=0.75,0.25" in shown.stdout.splitlines()
    tiny = kc("train", "titanic", "--model", "blend", "-p", "members=sk-logistic,knn", "-p", "weights=1,1000",
              ws=titanic_only)
    assert "blend as trained: members=sk-logistic,knn weights=<0.01,1.00" in tiny.stdout.splitlines()  # not 0.00


def test_a_blend_whose_saved_members_were_cut_to_one_still_lists(titanic_only, kc):
    run = trainer.train(TITANIC, Workspace(titanic_only), records.TrainConfig("blend", {"members": "sk-logistic,knn"}))
    path = run.folder / "blend.json"
    saved = json.loads(path.read_text())
    path.write_text(json.dumps(saved | {"members": saved["members"][:1]}))
    listed = kc("runs", "titanic", ws=titanic_only)
    assert listed.exit_code == 0 and run.run_id in listed.stdout
    assert "members=sk-logistic,knn weights=unreadable" in listing.options_text(run, TITANIC)
    refused = kc("submit", "titanic", "--run", run.run_id, ws=titanic_only)
    assert refused.exit_code == 1 and "the blend's saved members cannot be loaded" in refused.stderr


@pytest.mark.slow
def test_a_default_value_blend_and_one_naming_the_same_members_are_two_experiments(workspace):
    from conftest import install

    install(workspace, "house-prices")
    houses = competitions.get("house-prices", workspace)
    ws = Workspace(workspace)
    default = trainer.train(houses, ws, records.TrainConfig("blend", folds=0))
    named = trainer.train(houses, ws, records.TrainConfig("blend", {"members": "sk-ridge,sk-gbm"}, folds=0))
    assert default.score != named.score  # the defaults' members carry their own options
    assert listing.repeats([default, named], houses) == {}


def test_a_blend_whose_chosen_weights_were_damaged_lists_them_as_unreadable_not_equal(titanic_only, kc):
    run = trainer.train(TITANIC, Workspace(titanic_only), records.TrainConfig("blend", {"members": "sk-logistic,knn"}))
    path = run.folder / "blend.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"chosen": [0.7, 0.7]}))
    assert listing.options_text(run, TITANIC) == "members=sk-logistic,knn weights=unreadable"
    listed = kc("runs", "titanic", ws=titanic_only)
    assert listed.exit_code == 0 and run.run_id in listed.stdout
    refused = kc("submit", "titanic", "--run", run.run_id, ws=titanic_only)
    assert refused.exit_code == 1 and "its chosen weights [0.7, 0.7] are not 2 non-negative shares" in refused.stderr


def test_a_default_blend_with_a_damaged_blend_json_lists_its_default_members(titanic_only):
    run = trainer.train(TITANIC, Workspace(titanic_only), records.TrainConfig("blend", {}, folds=0))
    (run.folder / "blend.json").write_text("{")
    assert listing.options_text(run, TITANIC) == "members=sk-logistic,sk-gbm,catboost weights=unreadable"


@pytest.mark.parametrize("model", ["linear", "tabular"])
def test_ctrl_c_before_the_first_epoch_ends_saves_no_run(titanic_only, model):
    from pipeline.core import progress

    def ctrl_c(what, done, total):
        if what == "batch":
            raise KeyboardInterrupt

    cfg = records.TrainConfig(model, {"epochs": 3}, folds=0, threads=1)
    with progress.listening(ctrl_c), pytest.raises(KeyboardInterrupt):
        trainer.train(TITANIC, Workspace(titanic_only), cfg)
    runs = Workspace(titanic_only).runs_dir("titanic")
    assert not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".")]
