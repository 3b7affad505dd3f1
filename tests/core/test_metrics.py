"""The metric registry against scikit-learn's implementations, and its direction rules."""

import numpy as np
import pytest
from sklearn import metrics as sk

from pipeline.core import metrics
from pipeline.core.errors import UsageError

rng = np.random.default_rng(0)
Y2 = rng.integers(0, 2, 200)
P2 = np.clip(Y2 * 0.6 + rng.random(200) * 0.5, 0.01, 0.99)
PROBA2 = np.stack([1 - P2, P2], 1)
Y3 = rng.integers(0, 3, 200)
PROBA3 = rng.dirichlet([1, 1, 1], 200)
VALUES = rng.uniform(50_000, 500_000, 200)
PRED = VALUES * rng.lognormal(0, 0.1, 200)


@pytest.mark.parametrize(
    ("name", "y", "prediction", "expected"),
    [
        ("accuracy", Y3, PROBA3.argmax(1), sk.accuracy_score(Y3, PROBA3.argmax(1))),
        ("f1", Y2, (P2 > 0.5).astype(int), sk.f1_score(Y2, (P2 > 0.5).astype(int))),
        ("roc-auc", Y2, PROBA2, sk.roc_auc_score(Y2, P2)),
        ("log-loss", Y2, PROBA2, sk.log_loss(Y2, PROBA2)),
        ("log-loss", Y3, PROBA3, sk.log_loss(Y3, PROBA3)),
        ("rmse", VALUES, PRED, sk.root_mean_squared_error(VALUES, PRED)),
        ("rmse-log", VALUES, PRED, sk.root_mean_squared_error(np.log(VALUES), np.log(PRED))),
        ("mae", VALUES, PRED, sk.mean_absolute_error(VALUES, PRED)),
        ("f1-macro", Y3, PROBA3.argmax(1), sk.f1_score(Y3, PROBA3.argmax(1), average="macro")),
        ("f1-micro", Y3, PROBA3.argmax(1), sk.f1_score(Y3, PROBA3.argmax(1), average="micro")),
        ("mcc", Y3, PROBA3.argmax(1), sk.matthews_corrcoef(Y3, PROBA3.argmax(1))),
        ("qwk", Y3, PROBA3.argmax(1), sk.cohen_kappa_score(Y3, PROBA3.argmax(1), weights="quadratic")),
        ("rmsle", VALUES, PRED, sk.root_mean_squared_log_error(VALUES, PRED)),
        ("mape", VALUES, PRED, sk.mean_absolute_percentage_error(VALUES, PRED)),
        ("r2", VALUES, PRED, sk.r2_score(VALUES, PRED)),
        ("map@3", Y3, PROBA3, sk.top_k_accuracy_score(Y3, PROBA3, k=1) + 0.5 * (
            sk.top_k_accuracy_score(Y3, PROBA3, k=2) - sk.top_k_accuracy_score(Y3, PROBA3, k=1)) + (
            sk.top_k_accuracy_score(Y3, PROBA3, k=3) - sk.top_k_accuracy_score(Y3, PROBA3, k=2)) / 3),
    ],
)
def test_metrics_agree_with_scikit_learn(name, y, prediction, expected):
    assert metrics.get(name).score(y, prediction) == pytest.approx(expected, rel=1e-9)


def test_direction_and_ordering():
    acc, rmse = metrics.get("accuracy"), metrics.get("rmse")
    assert acc.better(0.9, 0.8) and not acc.better(0.8, 0.9)
    assert rmse.better(0.1, 0.2) and not rmse.better(0.2, 0.1)
    assert sorted([0.2, float("nan"), 0.1], key=rmse.sort_key)[:2] == [0.1, 0.2]
    assert acc.format(0.8123) == "81.23%" and rmse.format(0.12345) == "0.1235" and rmse.format(None) == "-"


def test_log_metric_learns_logs_and_writes_values():
    m = metrics.get("rmse-log")
    assert m.log_target and np.allclose(m.from_model(m.to_model(VALUES)), VALUES)
    assert not metrics.get("rmse").log_target


def test_unknown_or_unfitting_metric_lists_choices():
    with pytest.raises(UsageError, match="unknown metric 'r3'; kc knows: accuracy, f1, f1-macro"):
        metrics.get("r3")
    with pytest.raises(UsageError, match="metric 'rmse' does not score binary tasks; use one of: accuracy, f1, "
                                         "f1-macro, f1-micro, mcc, qwk, roc-auc, log-loss"):
        metrics.get("rmse", "binary")


def test_smape_and_rmsle_on_worked_examples():
    # SMAPE, Kaggle's definition: rows (100, 110) -> 2*10/210, (0, 0) -> 0, (50, 0) -> 2 -> mean * 100
    assert metrics.get("smape").score(np.array([100.0, 0, 50]), np.array([110.0, 0, 0])) == \
        pytest.approx(100 * (20 / 210 + 0 + 2) / 3)
    # RMSLE is zero-safe (log1p) and differs from RMSE of logs: y=0 is fine, and negative predictions count as 0
    rmsle = metrics.get("rmsle")
    assert rmsle.score(np.array([0.0, np.e - 1]), np.array([-5.0, np.e - 1])) == pytest.approx(np.sqrt(0.5 * 0))
    assert rmsle.score(np.array([0.0]), np.array([np.e - 1])) == pytest.approx(1.0)
    assert np.allclose(rmsle.from_model(rmsle.to_model(VALUES)), VALUES)
    assert rmsle.valid_values(np.array([0.0, -1.0, np.inf])).tolist() == [True, False, False]


@pytest.mark.parametrize(("kaggle", "ours"), [
    ("Root Mean Squared Logarithmic Error", "rmsle"), ("MulticlassLoss", "log-loss"), ("AUC", "roc-auc"),
    ("CategorizationAccuracy", "accuracy"), ("Quadratic Weighted Kappa", "qwk"), ("RMSE", "rmse"),
    ("Mean Absolute Error", "mae"), ("SMAPE", "smape"), ("MAP@3", "map@3"), ("MatthewsCorrelationCoefficient", "mcc"),
])
def test_kaggle_metric_names(kaggle, ours):
    assert metrics.get(kaggle).name == ours


YT = rng.integers(0, 2, (200, 3))  # three 0/1 targets
PT = np.clip(YT * 0.5 + rng.random((200, 3)) * 0.6, 0.001, 0.999)
VT = rng.uniform(0, 1000, (200, 2))  # two value targets, zeros allowed by RMSLE
VP = VT * rng.lognormal(0, 0.2, (200, 2))


@pytest.mark.parametrize(("name", "y", "prediction", "per_column"), [
    ("mean-auc", YT, PT, sk.roc_auc_score),
    ("mean-log-loss", YT, PT, lambda y, p: sk.log_loss(y, p, labels=[0, 1])),
    ("mean-rmsle", VT, VP, sk.root_mean_squared_log_error),
    ("mean-rmse", VT, VP, sk.root_mean_squared_error),
    ("mean-mae", VT, VP, sk.mean_absolute_error),
])
def test_columnwise_metrics_are_scikit_learns_per_column_averaged(name, y, prediction, per_column):
    expected = np.mean([per_column(y[:, j], prediction[:, j]) for j in range(y.shape[1])])
    assert metrics.get(name).score(y, prediction) == pytest.approx(expected, rel=1e-9)
    assert metrics.get(name).columnwise and metrics.get(metrics.get(name).per_column).needs == metrics.get(name).needs


def test_a_columnwise_metric_refuses_one_column():
    with pytest.raises(ValueError, match=r"scores \(rows, targets\) arrays, not \(200,\)"):
        metrics.get("mean-rmse").score(VALUES, PRED)


@pytest.mark.parametrize(("kaggle", "ours"), [
    ("MCRMSLE", "mean-rmsle"), ("Mean Columnwise Root Mean Squared Logarithmic Error", "mean-rmsle"),
    ("Mean Columnwise AUC", "mean-auc"), ("Mean Column-wise Log Loss", "mean-log-loss"), ("MCRMSE", "mean-rmse"),
])
def test_kaggle_names_of_columnwise_metrics(kaggle, ours):
    assert metrics.get(kaggle).name == ours


def test_a_one_target_metric_maps_to_its_columnwise_mean():
    assert [metrics.for_columns(n) for n in ("rmsle", "roc-auc", "log-loss", "mean-auc", "accuracy")] == \
        ["mean-rmsle", "mean-auc", "mean-log-loss", "mean-auc", None]
    assert (metrics.default_for("regression", several=True), metrics.default_for("binary", True, several=True)) == \
        ("mean-rmse", "mean-log-loss")


def test_kaggle_names_of_more_metrics_and_a_near_miss_is_named():
    assert [metrics.get(n).name for n in ("MulticlassAccuracy", "Macro F1 Score", "Micro F1 Score")] == [
        "accuracy", "f1-macro", "f1-micro"]  # a new user's Kaggle names, unknown before
    with pytest.raises(UsageError, match=r"^unknown metric 'acuracy' \(did you mean accuracy\?\); kc knows: "):
        metrics.get("acuracy")
    with pytest.raises(UsageError, match=r"^unknown metric 'Mean Squared Error' \(did you mean rmse\?\)"):
        metrics.get("Mean Squared Error")


@pytest.mark.parametrize("name", ["MAP@K", "Kappa", "Mean F1"])
def test_names_of_other_metrics_are_no_aliases(name):
    assert metrics.canonical(name) is None  # MAP@5 is no map@3, Cohen's kappa no quadratic weighted one
