"""`kc explain`: permutation importance judged by the run's own fold models on their held-out rows, and the
per-class accuracy and top losses of a pixel run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.core import competitions
from pipeline.core.errors import UsageError
from pipeline.core.workspace import Workspace
from pipeline.interpretation import explain
from pipeline.training import records, trainer
from pipeline.training.records import read_valid

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_importance_is_judged_by_each_fold_model_on_its_own_held_out_rows(kc, titanic_only):
    comp = competitions.get("titanic", titanic_only)
    ws = Workspace(titanic_only)
    run = trainer.train(comp, ws, records.TrainConfig(model="linear", folds=3))
    found = explain(comp, ws, run.run_id)
    # unshuffled, the fold models reproduce the run's out-of-fold score: each judged only the rows it never saw
    assert found.baseline == pytest.approx(run.score, abs=1e-9)
    assert set(list(found.importance)[:3]) & {"Female", "TitleMr"}  # sex and title carry Titanic
    assert found.picture is not None and found.picture.read_bytes().startswith(PNG)
    assert found.picture.parent == run.folder  # drawn beside the run's other pictures, so the report shows it
    printed = kc("explain", "titanic", "--run", run.run_id, "--repeats", "1", ws=titanic_only)
    assert printed.exit_code == 0, printed.output
    assert "accuracy lost when shuffled" in printed.stdout and "points" in printed.stdout

    full = trainer.train(comp, ws, records.TrainConfig(model="sk-logistic", full=True))
    with pytest.raises(UsageError, match="explain a run trained without --full"):
        explain(comp, ws, full.run_id)
    with pytest.raises(UsageError, match="--repeats 0"):
        explain(comp, ws, run.run_id, repeats=0)


def test_grouped_columns_of_a_generic_table_move_together(kc, workspace):
    layouts = Path(__file__).parent / "fixtures" / "layouts"
    assert kc("fetch", "penguins", "--from", layouts / "penguins", ws=workspace).exit_code == 0
    comp = competitions.get("penguins", workspace)
    ws = Workspace(workspace)
    run = trainer.train(comp, ws, records.TrainConfig(model="sk-logistic", folds=3))
    found = explain(comp, ws, run.run_id, repeats=1)
    assert "Island" in found.importance and not any("=" in c for c in found.importance)  # one-hot parts as one
    assert found.baseline == pytest.approx(run.score, abs=1e-9)


def test_pixels_get_per_class_accuracy_and_their_most_confident_mistakes(fetched):
    comp = competitions.get("digit-recognizer", fetched)
    ws = Workspace(fetched)
    run = trainer.train(comp, ws, records.TrainConfig(model="knn", folds=0, valid_pct=0.3))
    found = explain(comp, ws, run.run_id)
    valid = read_valid(run, comp, 300)
    labels = pd.read_csv(Path(__file__).parent / "fixtures/digit-recognizer/train.csv")["label"]
    truth = labels.to_numpy()[valid["index"]]
    counts = {str(k): int((truth == k).sum()) for k in range(10)}
    weighted = sum(found.class_accuracy[c] * n for c, n in counts.items() if n) / len(truth)
    assert weighted == pytest.approx(run.score)  # the classes' accuracies add up to the run's
    if run.score < 1:
        assert found.picture is not None and found.picture.name == "top_losses.png"
