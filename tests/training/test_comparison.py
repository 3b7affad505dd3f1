"""`kc compare`: every model on the same folds, best first, each one a run that `kc submit` can use."""

from __future__ import annotations

import pytest

from pipeline.core import competitions
from pipeline.core.errors import UsageError
from pipeline.training.comparison import chosen_models
from pipeline.training.records import list_runs


@pytest.mark.slow
def test_models_are_ranked_by_their_out_of_fold_scores_on_the_same_folds(kc, titanic_only):
    result = kc("compare", "titanic", "--models", "linear,knn,sk-logistic", "--folds", "3", ws=titanic_only)
    assert result.exit_code == 0, result.output
    assert "linear fold 1/3: " in result.stderr and "\nfold 1/3: " not in result.stderr  # which model's fold it was
    comp = competitions.get("titanic", titanic_only)
    from pipeline.core.workspace import Workspace

    runs = list_runs(comp, Workspace(titanic_only))
    assert sorted(r.model for r in runs) == ["knn", "linear", "sk-logistic"]
    assert {(r.config.folds, r.config.seed) for r in runs} == {(3, 0)}
    assert all(r.metrics.scored_on == "oof" and len(r.metrics.fold_scores) == 3 for r in runs)
    best_first = sorted(runs, key=lambda r: comp.scorer.sort_key(r.score))
    printed = [line for line in result.stdout.splitlines() if any(r.run_id in line for r in runs)
               and "kc submit" not in line]
    assert [next(r.model for r in runs if r.run_id in line) for line in printed] == [r.model for r in best_first]
    assert comp.scorer.format(best_first[0].score) in printed[0]
    assert f"kc submit titanic --run {best_first[0].run_id}" in result.stdout
    submitted = kc("submit", "titanic", "--run", best_first[0].run_id, ws=titanic_only)
    assert submitted.exit_code == 0, submitted.output


def test_slow_models_are_left_out_unless_named(fetched):
    digits = competitions.get("digit-recognizer", fetched)
    run, left = chosen_models(digits, None)
    assert "cnn" not in run and left == ("cnn",) and "knn" in run
    assert chosen_models(digits, ["CNN", "knn"]) == (["cnn", "knn"], ())


@pytest.mark.parametrize(("models", "message"), [
    (["cnn"], "--models: 'cnn' does not fit titanic; choose from "),
    (["knn", "knn"], "--models: a model is named twice"),
])
def test_models_that_do_not_fit_are_one_line_errors(fetched, models, message):
    with pytest.raises(UsageError, match=message):
        chosen_models(competitions.get("titanic", fetched), models)


def test_one_fold_is_no_comparison(kc, titanic_only):
    result = kc("compare", "titanic", "--folds", "1", ws=titanic_only)
    assert result.exit_code == 2 and "--folds" in result.stderr and len(result.stderr.strip().splitlines()) <= 3


def test_a_comparison_where_no_model_can_be_scored_is_an_error(kc, workspace):
    src = workspace.parent / "tiny"
    src.mkdir()
    (src / "train.csv").write_text("id,x,y\n" + "".join(f"{i},{i},{int(i == 1)}\n" for i in range(1, 7)))
    (src / "test.csv").write_text("id,x\n7,7\n8,8\n")
    (src / "sample_submission.csv").write_text("id,y\n7,0\n8,0\n")
    assert kc("fetch", "tiny", "--from", src, ws=workspace).exit_code == 0
    result = kc("compare", "tiny", "--models", "knn,sk-logistic", "--folds", "3", ws=workspace)
    assert result.exit_code == 1 and result.stderr.startswith("Error: no model could be scored: ")
    empty = kc("compare", "tiny", "--models", ",", ws=workspace)
    assert empty.exit_code == 1 and "name at least one model" in empty.stderr
