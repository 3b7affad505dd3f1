"""Several targets: the folds they share, and runs read back only for the targets they learned."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

from pipeline.core import competitions
from pipeline.core.errors import DataError, UsageError
from pipeline.training import splits, targets
from pipeline.training.honesty import few_rows_note, most_folds
from pipeline.training.records import Run, RunMetrics, TrainConfig

SKIES = competitions.Competition(slug="skies", title="Skies", id_column="id", target_column="rain", task="binary",
                                 metric="mean-auc", classes=("0", "1"), submission="proba", targets=("rain", "sun"))
SIZES = competitions.Competition(slug="sizes", title="Sizes", id_column="id", target_column="a", task="regression",
                                 metric="mean-rmsle", labels="float", targets=("a", "b"))


def test_binary_targets_share_folds_that_spread_every_targets_rarer_class():
    rng = np.random.default_rng(0)
    y = np.column_stack([rng.integers(0, 2, 100), (np.arange(100) % 10 == 0), rng.integers(0, 2, 100)])
    three = dataclasses.replace(SKIES, targets=("rain", "fog", "sun"))
    groups = targets.shared_strata(three, y.astype(np.int64))
    assert np.array_equal(groups == 0, y[:, 1] == 1)  # the rarest target's 10 positives: a group of their own
    two = np.zeros((20, 2), np.int64)
    two[[0, 1], 0] = 1
    two[[2, 3], 1] = 1  # two targets of two 1s each, on other rows: stratifying on one left the other's in one fold
    for seed in range(10):
        for part in targets.shared_held_out(SKIES, TrainConfig("knn", folds=2, seed=seed), two):
            rest = np.setdiff1d(np.arange(20), part)
            assert (two[rest].min(axis=0) == 0).all() and (two[rest].max(axis=0) == 1).all(), seed


def _each_fold_holds_both_classes(y: np.ndarray, parts: list[np.ndarray]) -> bool:
    return sorted(np.concatenate(parts).tolist()) == list(range(len(y))) and all(
        (y[part].min(axis=0) == 0).all() and (y[part].max(axis=0) == 1).all() for part in parts)


def test_nested_binary_targets_take_as_many_folds_as_their_smallest_class_has_rows():
    y = np.zeros((30, 4), np.int64)
    for j, rows in enumerate([(3, 4), (1, 3), (2, 4), (1, 2)]):  # each 1 shared with another target: rows grouped
        y[list(rows), j] = 1                                        # by one target left groups of one row
    four = dataclasses.replace(SKIES, target_column="y", targets=("y", "x1", "x2", "b"))
    assert most_folds(four, y) == 2
    for seed in range(20):
        assert _each_fold_holds_both_classes(y, targets.shared_held_out(four, TrainConfig("knn", folds=2, seed=seed),
                                                                        y)), seed
    with pytest.raises(UsageError) as err:
        targets.shared_held_out(four, TrainConfig("knn", folds=3), y)
    assert str(err.value) == "--folds 3: more folds than the 2 rows of y's rarer class; use --folds 2"


def _ones(rows: int, where: list[list[int]]) -> np.ndarray:
    y = np.zeros((rows, len(where)), np.int64)
    for j, found in enumerate(where):
        y[found, j] = 1
    return y


def test_targets_whose_ones_no_two_folds_can_split_are_offered_no_folds_and_told_so():
    triangle = _ones(60, [[0, 1], [0, 2], [1, 2]])  # each pair of rows must part, and three rows cannot in two folds
    three = dataclasses.replace(SKIES, target_column="x", targets=("x", "y", "z"))
    assert most_folds(three, triangle) == 0  # it offered 2, and `kc train` without --folds failed on them
    split = RunMetrics("mean-auc", 0.9, valid_rows=6, train_rows=54, fit_seconds=0, predict_seconds=0, most_folds=0,
                       target_scores={"x": 0.9, "y": 0.9, "z": 0.9})
    assert few_rows_note(split).endswith("kc finds no two folds that each hold both classes of every target, so no "
                                         "row is scored out-of-fold")  # not 'a class with a single row'
    with pytest.raises(DataError) as err:
        targets.shared_held_out(three, TrainConfig("knn", folds=2), triangle)
    message = str(err.value)
    assert message.startswith("--folds 2: kc found no 2 folds that each hold both classes of every target (a fold "
                              "lacks a class of ") and message.endswith(", whose 1s share rows with other targets'); "
                                                                        "--folds 0 scores a split instead")
    assert message.split("lacks a class of ")[1].split(",")[0] in ("x", "y", "z")  # a target that clashes
    five = _ones(60, [[1, 3], [0, 2, 3], [0, 4], [2, 4], [0, 1, 3]])  # {0, 1, 2} and {3, 4} part every target's 1s
    names = dataclasses.replace(SKIES, target_column="t0", targets=tuple(f"t{j}" for j in range(5)))
    assert most_folds(names, five) == 2  # greedy dealing alone found no such folds for any seed
    for seed in range(5):
        assert _each_fold_holds_both_classes(five, targets.shared_held_out(names, TrainConfig("knn", folds=2,
                                                                                             seed=seed), five))


def test_folds_hold_both_classes_of_every_target_on_random_tables():
    rng = np.random.default_rng(0)
    for trial in range(300):
        rows, count = int(rng.integers(10, 60)), int(rng.integers(2, 6))
        y = (rng.random((rows, count)) < rng.uniform(0.05, 0.5, count)).astype(np.int64)
        y[:, 1] = y[:, 0] * (rng.random(rows) < 0.7)  # one target nested in another
        comp = dataclasses.replace(SKIES, target_column="t0", targets=tuple(f"t{j}" for j in range(count)))
        for k in range(2, most_folds(comp, y) + 1):
            parts = targets.shared_held_out(comp, TrainConfig("knn", folds=k, seed=trial), y)
            assert _each_fold_holds_both_classes(y, parts), (trial, k)
            assert max(map(len, parts)) - min(map(len, parts)) <= max(2, rows / k / 4), (trial, k)  # about even


def test_value_targets_share_the_first_targets_quantile_bins():
    y = np.random.default_rng(1).lognormal(size=(50, 2))
    assert np.array_equal(targets.shared_strata(SIZES, y), splits.strata(SIZES.for_target("a"), y[:, 0]))


@pytest.mark.parametrize("values", [np.arange(45.0), np.r_[np.full(3, 11.0), np.full(60, 12.0), np.arange(13.0, 80)]])
def test_value_bins_for_k_folds_hold_k_rows_each_on_few_or_repeated_values(values):
    y = np.random.default_rng(2).permutation(values)
    one = SIZES.for_target("a")
    assert np.bincount(splits.strata(one, y))[np.bincount(splits.strata(one, y)) > 0].min() < 5  # the plain bins
    groups = splits.strata(one, y, k=5)
    assert np.bincount(groups).min() >= 5 and len(np.unique(groups)) == min(10, len(y) // 5)
    bins = [y[groups == g] for g in np.unique(groups)]
    assert all(low.max() <= high.min() for low, high in itertools.pairwise(bins))  # bins of value ranges
    parts = splits.folds(groups, 5, 0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    assert max(map(len, parts)) - min(map(len, parts)) <= len(np.unique(groups))
    many = np.random.default_rng(3).lognormal(size=500)
    assert np.array_equal(splits.strata(one, many, k=5), splits.strata(one, many))  # bins of 50: unchanged


def test_a_run_of_other_targets_is_refused(tmp_path):
    metrics = RunMetrics(metric="mean-auc", score=0.9, valid_rows=10, train_rows=10, fit_seconds=1,
                         predict_seconds=1, target_scores={"sun": 0.9, "rain": 0.9})
    run = Run("r1", tmp_path, TrainConfig("lgbm"), metrics)
    with pytest.raises(DataError) as err:
        list(targets.per_target(SKIES, run))
    assert str(err.value) == ("run r1 learned the targets sun, rain, not skies's rain, sun: train again with "
                              "`kc train skies`")
    good = Run("r2", tmp_path, TrainConfig("lgbm"), dataclasses.replace(metrics, target_scores={"rain": 1, "sun": 1}))
    assert [(view.target_column, sub.folder.name) for view, sub in targets.per_target(SKIES, good)] == \
        [("rain", "target0"), ("sun", "target1")]


def test_saved_target_scores_are_read_back_and_checked(tmp_path):
    data = {"metric": "mean-auc", "score": 0.9, "valid_rows": 10, "train_rows": 10, "fit_seconds": 1,
            "predict_seconds": 1, "target_scores": {"rain": 0.9, "sun": 0.8}}
    assert RunMetrics.from_json(json.loads(json.dumps(data)), "m").target_scores == {"rain": 0.9, "sun": 0.8}
    with pytest.raises(DataError, match="m: scores must be numbers"):
        RunMetrics.from_json({**data, "target_scores": {"rain": "high"}}, "m")
    with pytest.raises(DataError, match="m: target_scores is list, expected dict"):
        RunMetrics.from_json({**data, "target_scores": [0.9]}, "m")


def test_a_columnwise_auc_leaves_out_the_columns_of_one_class():
    from pipeline.core import metrics

    auc = metrics.get("mean-auc")
    y = np.array([[0, 0], [1, 0], [0, 0], [1, 0]])
    p = np.array([[0.1, 0.3], [0.9, 0.2], [0.2, 0.1], [0.8, 0.4]])
    assert auc.score(y, p) == 1.0  # the second column has no 1 to rank
    assert np.isnan(auc.score(y[:, [1, 1]], p))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's own answer varies: an error, 0.0, or NaN with a warning
        assert np.isnan(metrics.get("roc-auc").score(y[:, 1], np.column_stack([1 - p[:, 1], p[:, 1]])))
    values = np.array([[1.0, 2.0], [2.0, 3.0]])
    assert np.isinf(metrics.get("mean-rmse").score(values, np.array([[1.0, np.inf], [2.0, 3.0]])))  # not left out
