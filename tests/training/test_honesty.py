"""Small tables are scored out-of-fold unless told otherwise, and a score on few rows says so with the fix."""

from __future__ import annotations

import numpy as np

from pipeline.core import competitions
from pipeline.core.workspace import Workspace
from pipeline.training import records, trainer
from pipeline.training.honesty import auto_folds, few_rows_note
from pipeline.training.records import RunMetrics

TITANIC = competitions.get("titanic")
DIGITS = competitions.get("digit-recognizer")


def test_small_tables_and_image_sets_get_five_folds_and_others_one_split():
    def labels(n: int, smallest: int = 100) -> np.ndarray:
        return np.r_[np.zeros(n - smallest, np.int64), np.ones(smallest, np.int64)]

    assert auto_folds(TITANIC, labels(891)) == 5 and auto_folds(TITANIC, labels(4_999)) == 5
    assert auto_folds(TITANIC, labels(5_000)) == 0 and auto_folds(DIGITS, labels(2_000)) == 0
    assert auto_folds(DIGITS, labels(1_999)) == 5  # images: a 10% split of fewer holds under 200
    values = competitions.get("house-prices-advanced-regression-techniques")
    assert [auto_folds(values, np.arange(n, dtype=float)) for n in (1, 2, 4, 5, 45)] == [0, 2, 4, 5, 5]
    assert auto_folds(TITANIC, labels(300, smallest=3)) == 3  # as many folds as the rarest class can fill
    assert auto_folds(TITANIC, labels(300, smallest=1)) == 0


def test_a_run_without_folds_on_a_small_table_is_scored_out_of_fold(titanic_only):
    run = trainer.train(TITANIC, Workspace(titanic_only), records.TrainConfig("knn", folds=None))
    assert run.config.folds == 5 and run.metrics.scored_on == "oof" and len(run.metrics.fold_scores) == 5
    assert run.metrics.valid_rows == 300  # every fixture row


def test_a_score_on_few_rows_warns_with_the_fix():
    split = RunMetrics("accuracy", 1.0, valid_rows=13, train_rows=117, fit_seconds=0, predict_seconds=0)
    assert few_rows_note(split) == ("scored on only 13 held-out rows: another split could move it by several "
                                    "points; score every row out-of-fold with --folds 5")  # a run saved before
    split.most_folds = 3  # the rarest class has 3 rows: --folds 5 would be refused
    assert few_rows_note(split).endswith("out-of-fold with --folds 3")
    split.most_folds = 0
    assert few_rows_note(split).endswith("a class with a single row keeps every row from being scored out-of-fold; "
                                         "more rows are the fix")
    assert few_rows_note(RunMetrics("accuracy", 0.9, 200, 800, 0, 0)) is None
    oof = RunMetrics("accuracy", 0.9, valid_rows=130, train_rows=104, fit_seconds=0, predict_seconds=0,
                     scored_on="oof")
    assert few_rows_note(oof) == ("scored on only 130 rows in all: any score on so few rows is rough, and runs whose "
                                  "scores lie close may differ by chance alone")  # not "more rows": Kaggle has no more
    one = RunMetrics("rmse", 1.0, valid_rows=1, train_rows=3, fit_seconds=0, predict_seconds=0, most_folds=4)
    assert few_rows_note(one).startswith("scored on only 1 held-out row: another split")


def test_kc_train_warns_on_a_small_split(titanic_only, kc):
    split = kc("train", "titanic", "-m", "knn", "--folds", "0", ws=titanic_only)
    assert split.exit_code == 0, split.output
    assert split.stderr.endswith("WARNING: scored on only 30 held-out rows: another split could move it by several "
                                 "points; score every row out-of-fold with --folds 5\n")
    default = kc("train", "titanic", "-m", "knn", ws=titanic_only)
    assert "out-of-fold accuracy" in default.stdout and "WARNING" not in default.stderr
