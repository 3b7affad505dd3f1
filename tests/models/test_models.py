import collections
import importlib
import json
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from pipeline.core.errors import DataError, UsageError
from pipeline.models import MODELS, model_class
from pipeline.models.base import NotFittedError
from pipeline.models.knn import KNNModel, deskew
from pipeline.models.linear import LinearModel
from pipeline.models.sklearn_models import SkForest, SkGBM, SkLogistic, SkRidge
from pipeline.models.tabular import TabularModel

DIGITS = Path(__file__).parents[1] / "fixtures" / "digit-recognizer"


@pytest.fixture(autouse=True)
def _one_thread():
    """Small data gains nothing from threads, and OpenMP spinning on a busy machine is slow (HistGradientBoosting)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits():
    """The fixture's 300 labelled digits and 100 unlabelled ones, as (n, 28, 28) uint8 and int64 labels."""
    train = np.loadtxt(DIGITS / "train.csv", delimiter=",", skiprows=1, dtype=np.int64)
    test = np.loadtxt(DIGITS / "test.csv", delimiter=",", skiprows=1, dtype=np.int64)
    return SimpleNamespace(X=train[:, 1:].astype(np.uint8).reshape(-1, 28, 28), y=train[:, 0],
                           X_test=test.astype(np.uint8).reshape(-1, 28, 28))


def classes_table(n=300, d=6, k=2, seed=0):
    """Standardised features and int64 class codes drawn from a softmax of a random linear map."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    logits = X @ rng.normal(size=(d, k)) * 2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p], dtype=np.int64)
    return X, y


def values_table(n=200, d=5, seed=0):
    """Standardised features and float targets far from mean 0 / std 1: 50 + 10 (X w) + noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = 50 + 10 * (X.astype(np.float64) @ rng.normal(size=d)) + 3 * rng.normal(size=n)
    return X, y


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def comp(task, modality="tabular"):
    return SimpleNamespace(task=task, modality=modality, slug="test")


# --- the common suite: every registered model runs the same checks, one test id each ----------------------
TABLE_CASES = [pytest.param(name, task, id=f"{name}-{task}", marks=[pytest.mark.slow] if name == "blend" else [])
               for name, info in MODELS.items() if "tabular" in info.modalities for task in info.tasks]
FAST = {"tabular": {"epochs": 2}, "sk-forest": {"n_estimators": 10}, "sk-gbm": {"max_iter": 20},
        "catboost": {"iterations": 60}}


@pytest.mark.parametrize("name", list(MODELS))
def test_registry_entry_matches_its_class(name):
    info = MODELS[name]
    cls = getattr(importlib.import_module(info.module), info.cls)
    assert (cls.name, cls.tasks, cls.modalities) == (name, info.tasks, info.modalities)


@pytest.mark.parametrize("name", list(MODELS))
def test_predict_before_fit_is_a_clear_error(name):
    model = model_class(name, comp(MODELS[name].tasks[0], MODELS[name].modalities[0]))()
    X = np.zeros((2, 3), np.float32) if "tabular" in MODELS[name].modalities else np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(NotFittedError, match=f"this {name} model is not fitted yet"):
        model.predict(X)


@pytest.mark.parametrize(("name", "task"), TABLE_CASES)
def test_fit_returns_itself_and_a_saved_model_loads_back_the_same(name, task, tmp_path):
    X, y = values_table(n=150) if task == "regression" else classes_table(n=150, k=2 if task == "binary" else 3)
    cls = model_class(name, comp(task))
    model = cls.from_params(FAST.get(name, {}))
    assert model.fit(X, y) is model and model.fitted_
    model.save(tmp_path)
    again = cls.from_params(model.params()).load(tmp_path)
    assert again.fitted_ and again.regression_ == (task == "regression")
    if task == "regression":
        assert again.classes_ is None and np.array_equal(again.predict(X), model.predict(X))
    else:
        assert np.array_equal(again.classes_, np.unique(y))
        assert np.array_equal(again.predict_proba(X), model.predict_proba(X))


def test_scaled_inputs_go_to_the_models_that_need_them():
    assert not model_class("sk-gbm", comp("regression")).scaled and model_class("tabular", comp("binary")).scaled


def test_models_refuse_the_wrong_kind_of_target():
    X, y = values_table()
    with pytest.raises(UsageError, match="model 'sk-logistic' classifies"):
        SkLogistic().fit(X, y)
    with pytest.raises(UsageError, match="model 'sk-ridge' regresses"):
        SkRidge().fit(X, (y > 50).astype(np.int64))


# --- linear ---------------------------------------------------------------------------------------------
def test_logistic_gradient_descent_matches_scikit_learn():
    X, y = classes_table()
    C = 0.5
    ours = LinearModel(epochs=1500, lr=0.5, bs=len(X), momentum=0.9, weight_decay=1 / (C * len(X))).fit(X, y)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, y)
    assert np.allclose(ours.weight_[:, 0].numpy(), ref.coef_[0], atol=5e-3)
    assert ours.bias_.item() == pytest.approx(ref.intercept_[0], abs=5e-3)
    assert np.allclose(ours.predict_proba(X), ref.predict_proba(X), atol=2e-3)


@pytest.mark.slow
def test_softmax_gradient_descent_matches_scikit_learn(digits):
    from pipeline.pixels import images

    X, y = digits.X[:200], digits.y[:200]
    flat = images.to_float(X).reshape(len(X), -1)
    C = 0.01
    ours = LinearModel(epochs=1500, lr=0.1, bs=len(X), momentum=0.9, weight_decay=1 / (C * len(X))).fit(X, y)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(flat, y)
    # softmax logits are defined up to a constant per row, so compare probabilities
    assert np.abs(ours.predict_proba(X) - ref.predict_proba(flat)).max() < 5e-3


@pytest.mark.parametrize("weight_decay", [0.0, 0.02])
def test_least_squares_gradient_descent_matches_scikit_learn(weight_decay):
    X, y = values_table()
    ours = LinearModel(epochs=400, lr=0.1, bs=len(X), momentum=0.9, weight_decay=weight_decay).fit(X, y)
    # on the standardised target, weight decay wd is Ridge's alpha = n wd / 2 (the MSE is a mean, not a sum)
    ref = Ridge(alpha=len(X) * weight_decay / 2).fit(X, y) if weight_decay else LinearRegression().fit(X, y)
    assert ours.regression_ and ours.classes_ is None
    assert np.allclose(ours.weight_[:, 0].numpy() * ours.y_std_, ref.coef_, atol=1e-3)
    prediction = ours.predict(X)
    assert prediction.dtype == np.float64 and np.allclose(prediction, ref.predict(X), atol=1e-3)


def test_linear_learns_and_records_history():
    X, y = classes_table(n=400)
    seen = []
    model = LinearModel(epochs=5, bs=16, lr=0.05).fit(X[:250], y[:250], X[250:], y[250:], on_epoch=seen.append)
    assert [r.epoch for r in seen] == [1, 2, 3, 4, 5] and model.history_ == seen
    assert set(seen[0].figures()) == {"train_loss", "valid_loss", "valid_accuracy"}
    assert np.mean(model.predict(X[250:]) == y[250:]) > 0.7


def test_ctrl_c_stops_linear_at_the_batch_and_keeps_the_lowest_validation_loss():
    import os
    import signal

    X, y = classes_table(n=400)
    before = signal.getsignal(signal.SIGINT)

    def press_ctrl_c(record):
        if record.epoch == 4:
            os.kill(os.getpid(), signal.SIGINT)  # as a terminal sends it: a flag the loop reads, never lost

    # a high rate on few rows: the validation loss jumps about, so the last epoch is not the best
    model = LinearModel(epochs=10, bs=8, lr=3.0, momentum=0.0).fit(X[:60], y[:60], X[250:], y[250:],
                                                                   on_epoch=press_ctrl_c)
    assert model.interrupted_ and [r.epoch for r in model.history_] == [1, 2, 3, 4]
    assert signal.getsignal(signal.SIGINT) is before
    best = min(model.history_, key=lambda r: r.valid_loss)
    assert best.epoch != 4, "pick settings whose last epoch is not the best"
    p = model.predict_proba(X[250:]).astype(np.float64)[np.arange(150), y[250:]]
    assert -np.mean(np.log(p)) == pytest.approx(best.valid_loss, rel=1e-4)


def test_linear_regression_keeps_the_last_epoch_and_reports_rmse_on_the_target_scale():
    X, y = values_table(n=300)
    model = LinearModel(epochs=8, bs=16, lr=0.02).fit(X[:200], y[:200], X[200:], y[200:])
    assert set(model.history_[0].figures()) == {"train_loss", "valid_loss", "valid_rmse"}
    last = model.history_[-1]
    assert last.valid_rmse == pytest.approx(rmse(model.predict(X[200:]), y[200:]), rel=1e-4)
    assert last.valid_loss == pytest.approx((last.valid_rmse / np.std(y[:200])) ** 2, rel=1e-4)
    assert last.valid_rmse < 0.5 * np.std(y[200:])


@pytest.mark.slow
@pytest.mark.parametrize("make", [lambda: LinearModel(epochs=6, bs=16, lr=0.05),
                                  lambda: TabularModel(epochs=6, dropout=0.0, wd=0.0, lr=3e-2)])
def test_validation_labels_choose_nothing(make):
    # held-out rows are scored with the model, so they must not pick its weights (an out-of-fold score would leak)
    X, y = classes_table(n=300)
    scrambled = np.random.default_rng(1).permutation(y[200:])
    a = make().fit(X[:200], y[:200], X[200:], y[200:])
    b = make().fit(X[:200], y[:200], X[200:], scrambled)
    assert [r.valid_loss for r in a.history_] != [r.valid_loss for r in b.history_]  # they were watched
    assert np.array_equal(a.predict_proba(X[200:]), b.predict_proba(X[200:]))


# --- kNN ------------------------------------------------------------------------------------------------
def plain_knn(train, query, k):
    out = []
    for q in query:
        d = [float(np.sum((q - t) ** 2)) for t in train]
        out.append(sorted(range(len(train)), key=lambda i: (d[i], i))[:k])
    return np.array(out)


def test_knn_neighbours_match_a_plain_distance_loop(digits):
    X, y = digits.X[:150], digits.y[:150]
    q = digits.X_test[:20]
    model = KNNModel(k=3, deskew=False, pca=0, batch=7).fit(X, y)
    d2, idx = model.kneighbors(q)
    expected = plain_knn(X.reshape(150, -1) / 255.0, q.reshape(20, -1) / 255.0, 3)
    assert np.array_equal(idx, expected)
    direct = ((q.reshape(20, 1, -1) / 255.0 - X.reshape(1, 150, -1) / 255.0) ** 2).sum(-1)
    assert np.allclose(d2, np.take_along_axis(direct, expected, 1), atol=1e-3)


def test_knn_uniform_vote(digits):
    X, y = digits.X[:150], digits.y[:150]
    model = KNNModel(k=5, weighting="uniform", deskew=False, pca=0).fit(X, y)
    _, idx = model.kneighbors(digits.X_test[:10])
    votes = np.array([np.bincount(y[row], minlength=10) for row in idx]) / 5
    assert np.allclose(model.predict_proba(digits.X_test[:10]), votes)


def test_text_options_are_refused_however_the_model_is_built():
    from pipeline.models.cnn import CNNModel

    for build in (lambda: KNNModel(weighting="closest"), lambda: KNNModel.from_params({"weighting": "closest"})):
        with pytest.raises(UsageError, match="^option weighting='closest': expected distance or uniform$"):
            build()
    with pytest.raises(UsageError, match="^option pool='max': expected concat or avg$"):
        CNNModel(pool="max")
    assert KNNModel(weighting="uniform").weighting == "uniform"


@pytest.mark.parametrize("weighting", ["distance", "uniform"])
def test_knn_regression_matches_a_plain_weighted_mean(weighting):
    X, y = values_table(n=120)
    query = values_table(n=15, seed=1)[0]
    model = KNNModel(k=4, weighting=weighting, pca=0).fit(X, y)
    expected = []
    for q in query.astype(np.float64):
        dist = [float(np.sqrt(np.sum((q - t) ** 2))) for t in X.astype(np.float64)]
        near = sorted(range(len(X)), key=lambda i: dist[i])[:4]
        w = [1.0 if weighting == "uniform" else 1 / (dist[i] + 1e-6) for i in near]
        expected.append(sum(wi * y[i] for wi, i in zip(w, near, strict=True)) / sum(w))
    prediction = model.predict(query)
    assert prediction.dtype == np.float64 and np.allclose(prediction, expected, rtol=1e-4)


def test_knn_with_pca_and_deskew_classifies_fixtures(digits):
    X, y = digits.X, digits.y
    model = KNNModel(pca=30).fit(X[:250], y[:250])
    assert np.mean(model.predict(X[250:]) == y[250:]) >= 0.8


def test_deskew_straightens_a_slanted_bar():
    image = np.zeros((1, 28, 28), np.uint8)
    for r in range(6, 22):
        c = 8 + (r - 6) * 12 // 16  # a bar slanting right as it goes down
        image[0, r, c : c + 2] = 255
    straight = deskew(image)[0].astype(float)
    cols = np.arange(28)
    centres = [(straight[r] * cols).sum() / straight[r].sum() for r in range(8, 20) if straight[r].sum() > 0]
    assert np.ptp(centres) < 1.5  # every row's ink sits in the same column
    mass = straight.sum()
    assert abs((straight.sum(1) * np.arange(28)).sum() / mass - 13.5) < 1.0


# --- save / load ----------------------------------------------------------------------------------------

# --- scikit-learn models: skops files and what load refuses -----------------------------------------------
class Planted:
    """An object whose unpickling creates a file: what a malicious estimator.pkl would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def saved_ridge(folder, **extra):
    X, y = values_table()
    model = SkRidge().fit(X, y)
    for key, value in extra.items():
        setattr(model.estimator_, key, value)
    folder.mkdir(exist_ok=True)
    model.save(folder)
    return folder


@pytest.mark.parametrize("planted", [os.system, Planted(Path("x")), "ordered"])
def test_load_refuses_untrusted_types(planted, tmp_path):
    class Ordered(collections.OrderedDict):
        pass

    value = Ordered(a=1) if planted == "ordered" else planted
    folder = saved_ridge(tmp_path / "run-7", evil=value)
    with pytest.raises(DataError) as err:
        SkRidge().load(folder)
    message = str(err.value)
    assert message.startswith("run run-7's estimator.skops holds types kc does not trust (") and "\n" not in message
    assert message.endswith("); train it again")
    assert {os.system: "system", "ordered": "Ordered"}.get(planted, "Planted") in message


def test_a_planted_pickle_is_never_unpickled(tmp_path):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Planted(proof)))  # the plant works when unpickled...
    assert proof.exists()
    marker = tmp_path / "marker"
    folder = tmp_path / "run-3"
    folder.mkdir()
    (folder / "estimator.pkl").write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(DataError, match=r"^run run-3 has no estimator.skops \(only an old pickled estimator.pkl"):
        SkForest().load(folder)
    assert not marker.exists()  # ...but kc never unpickles it


def test_load_refuses_a_damaged_file_and_a_foreign_estimator(tmp_path):
    folder = saved_ridge(tmp_path / "run-1")
    with pytest.raises(DataError, match="holds a Ridge, not a sk-logistic estimator; train it again"):
        SkLogistic().load(folder)
    (folder / "estimator.skops").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"^run run-1's estimator.skops cannot be read \(BadZipFile"):
        SkRidge().load(folder)
    X, y = values_table()
    forest = model_class("sk-forest", comp("regression"))(n_estimators=3).fit(X, y)
    forest.save(folder)
    with pytest.raises(DataError, match=r"does not trust \(sklearn.tree._tree.Tree\)"):
        SkGBM().load(folder)  # trees are trusted for forests only
    with pytest.raises(DataError, match="has no estimator.skops; train it again"):
        SkRidge().load(tmp_path)


@pytest.mark.parametrize("name", ["sk-forest", "sk-gbm"])
def test_load_refuses_trees_pointing_outside_themselves(name, tmp_path):
    X, y = classes_table(n=150)
    model = model_class(name, comp("binary")).from_params(FAST[name]).fit(X, y)
    folder = tmp_path / "run-2"
    folder.mkdir()
    model.save(folder)
    assert type(model).from_params(FAST[name]).load(folder).fitted_  # an honest file loads
    if name == "sk-forest":
        tree = model.estimator_.estimators_[0].tree_
        state = tree.__getstate__()
        state["nodes"]["left_child"][0] = 10**6
        tree.__setstate__(state)
    else:
        model.estimator_._predictors[0][0].nodes["right"][0] = 10**6
    model.save(folder)
    with pytest.raises(DataError, match="holds trees whose nodes point outside them"):
        type(model)().load(folder)


def test_gbm_patience_stops_on_the_validation_set():
    X, _ = values_table(n=300)
    noise = np.random.default_rng(3).normal(size=300)  # nothing to learn: validation loss stops improving early
    model = model_class("sk-gbm", comp("regression"))(patience=3).fit(X[:200], noise[:200], X[200:], noise[200:])
    est = model.estimator_
    assert est.n_iter_ < 50
    baseline = 0.5 * np.mean((noise[200:] - noise[:200].mean()) ** 2)  # half squared error before any tree
    assert -est.validation_score_[0] == pytest.approx(baseline, rel=1e-6)  # scored on the rows given, not a split


# --- fastai tabular -------------------------------------------------------------------------------------
def test_tabular_learns_values_quietly(capfd):
    X, y = values_table(n=500)
    seen = []
    model = TabularModel(epochs=8, seed=1).fit(X[:400], y[:400], X[400:], y[400:], on_epoch=seen.append)
    assert capfd.readouterr().out == ""  # no progress bars or tables
    assert model.history_ == seen and [r.epoch for r in seen] == list(range(1, 9))
    assert set(seen[0].figures()) == {"train_loss", "valid_loss", "valid_rmse"}
    error = rmse(model.predict(X[400:]), y[400:])
    assert error < 0.5 * rmse(np.mean(y[:400]), y[400:])
    assert seen[-1].valid_rmse == pytest.approx(error, rel=1e-4)


def test_tabular_learns_classes():
    X, y = classes_table(n=500, k=3)
    seen = []
    model = TabularModel(epochs=8).fit(X[:400], y[:400], X[400:], y[400:], on_epoch=seen.append)
    assert set(seen[0].figures()) == {"train_loss", "valid_loss", "valid_accuracy"}
    proba = model.predict_proba(X[400:])
    assert proba.shape == (100, 3) and proba.dtype == np.float32 and np.allclose(proba.sum(1), 1, atol=1e-5)
    majority = np.mean(y[400:] == np.bincount(y[:400]).argmax())
    assert np.mean(model.predict(X[400:]) == y[400:]) > majority + 0.2


def test_tabular_same_seed_same_predictions():
    X, y = values_table(n=200)
    runs = [TabularModel(epochs=2, layers="16,8", seed=s).fit(X, y).predict(X) for s in (5, 5, 6)]
    assert np.array_equal(runs[0], runs[1]) and not np.allclose(runs[0], runs[2])


def test_tabular_rejects_bad_layers():
    X, y = values_table(n=20)
    with pytest.raises(UsageError, match="layers='200,x'"):
        TabularModel(layers="200,x").fit(X, y)


# --- sk-ridge as a robust lasso, and the blend's default members -----------------------------------------
def test_ridge_l1_ratio_is_the_lasso_and_elastic_net_on_ridges_scale():
    from sklearn.linear_model import ElasticNet, Lasso

    X, _ = values_table(n=200, d=8)
    y = 50 + 10 * X[:, 0] - 5 * X[:, 1] + 3 * np.random.default_rng(1).normal(size=200)  # 6 columns of noise
    lasso = SkRidge(alpha=300.0, l1_ratio=1.0).fit(X, y)
    # Ridge's alpha weighs the sum of squared errors; scikit-learn's Lasso weighs their mean: alpha / n
    expected = Lasso(alpha=300.0 / 200, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(lasso.predict(X), expected.predict(X), rtol=1e-6)
    assert (lasso.estimator_.coef_[2:] == 0).all() and (lasso.estimator_.coef_[:2] != 0).all()  # L1 drops noise
    net = SkRidge(alpha=30.0, l1_ratio=0.5).fit(X, y)
    np.testing.assert_allclose(net.predict(X), ElasticNet(alpha=0.15, l1_ratio=0.5, max_iter=10_000).fit(X, y)
                               .predict(X), rtol=1e-6)
    with pytest.raises(UsageError, match=r"option l1_ratio=1.5: expected a number from 0 \(ridge\) to 1 \(lasso\)"):
        SkRidge(l1_ratio=1.5).fit(X, y)


def test_ridge_trim_refits_without_the_rows_a_first_fit_missed_by_far():
    from scipy.stats import median_abs_deviation

    X, y = values_table(n=200)
    y = y.copy()
    y[[3, 50, 120]] += [400.0, -300.0, 250.0]  # three sales nothing in X explains
    first = Ridge(alpha=1.0).fit(X, y)
    residuals = y - first.predict(X)
    spread = median_abs_deviation(residuals, scale="normal")  # 1.4826 x MAD, from scipy
    keep = np.abs(residuals - np.median(residuals)) <= 4 * spread
    assert not keep[[3, 50, 120]].any() and keep.sum() == 197
    trimmed = SkRidge(alpha=1.0, trim=4.0).fit(X, y)
    np.testing.assert_allclose(trimmed.estimator_.coef_, Ridge(alpha=1.0).fit(X[keep], y[keep]).coef_, rtol=1e-6)
    clean = rmse(trimmed.predict(X)[keep], y[keep])
    assert clean < rmse(SkRidge(alpha=1.0).fit(X, y).predict(X)[keep], y[keep])  # the outliers no longer pull
    assert np.array_equal(SkRidge(alpha=1.0, trim=0.0).fit(X, y).predict(X), first.predict(X))  # 0 = off


def test_ridge_clip_never_runs_past_the_rows_it_fitted(tmp_path):
    X, y = values_table(n=200)
    model = SkRidge(alpha=1.0, trim=4.0, clip=True).fit(X, y)
    far = X[:5] * 100  # far outside the range of every column
    inside = np.clip(far, X.min(0), X.max(0))
    np.testing.assert_allclose(model.predict(far), model.estimator_.predict(inside), rtol=1e-6)
    np.testing.assert_allclose(model.predict(X), model.estimator_.predict(X), rtol=1e-6)  # inside: unchanged
    model.save(tmp_path)
    again = SkRidge(alpha=1.0, trim=4.0, clip=True).load(tmp_path)
    assert np.array_equal(again.predict(far), model.predict(far))
    np.savez(tmp_path / "range.npz", low=np.zeros(2), high=np.ones(2))
    with pytest.raises(DataError, match="range.npz does not match its estimator; train it again"):
        SkRidge(clip=True).load(tmp_path)
    (tmp_path / "range.npz").unlink()
    with pytest.raises(DataError, match=r"range.npz cannot be read \(FileNotFoundError"):
        SkRidge(clip=True).load(tmp_path)


def test_gbm_max_features_samples_features_and_is_checked():
    X, y = values_table(n=200)
    some = SkGBM(max_iter=20, max_features=0.4).fit(X, y)
    assert some.estimator_.max_features == 0.4
    assert not np.array_equal(some.predict(X), SkGBM(max_iter=20).fit(X, y).predict(X))
    with pytest.raises(UsageError, match="option max_features=1.5: expected a share above 0, at most 1"):
        SkGBM(max_features=1.5).fit(X, y)


@pytest.mark.slow
def test_default_blend_members_carry_their_options_and_round_trip(tmp_path, monkeypatch):
    from pipeline.models import blend

    fast = dict(blend.DEFAULTS["regression"][1][1], max_iter=20)
    monkeypatch.setitem(blend.DEFAULTS, "regression", (blend.DEFAULTS["regression"][0], ("sk-gbm", fast)))
    X, y = values_table(n=200)
    model = blend.BlendModel(seed=3).fit(X, y)
    lasso, gbm = model.models_
    assert lasso.params() == {"alpha": 0.4, "l1_ratio": 1.0, "trim": 4.0, "clip": True}
    assert type(lasso.estimator_).__name__ == "ElasticNet"  # saved with skops, loaded through the allow-list below
    assert gbm.params() == {**SkGBM().params(), **fast, "seed": 3}
    w = model.weights_  # judged on rows held out of the fit's own: nothing tuned on the scored rows
    assert w is not None and w.tolist() in ([0.5, 0.5], [1.0, 0.0])  # a linear target: the lasso is never left out
    np.testing.assert_allclose(model.predict(X), w[0] * lasso.predict(X) + w[1] * gbm.predict(X))
    model.save(tmp_path)
    again = blend.BlendModel(seed=3).load(tmp_path)
    assert np.array_equal(again.weights_, w) and np.array_equal(again.predict(X), model.predict(X))
    named = blend.BlendModel(members="sk-ridge,sk-gbm").fit(X, y)  # named members keep their own defaults
    assert named.models_[0].params() == SkRidge().params()


@pytest.mark.parametrize(("members", "target", "kept"), [
    ("sk-ridge,sk-gbm", "steps", [0.0, 1.0]),  # a straight line through steps misses by far more than trees do
    ("sk-ridge,sk-ridge", "line", [0.5, 0.5]),  # two members alike: both kept, equal weights
])
def test_a_value_blend_leaves_out_a_member_far_worse_on_held_rows(members, target, kept, tmp_path):
    from pipeline.models import blend

    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = 20.0 * ((X[:, 0] > 0) ^ (X[:, 1] > 0)) if target == "steps" else 3.0 * X[:, 0]
    y = y + rng.normal(size=400)
    model = blend.BlendModel(members=members, seed=2).fit(X, y)
    assert model.weights_.tolist() == kept
    outputs = [m.predict(X) for m in model.models_]
    np.testing.assert_allclose(model.predict(X), sum(w * o for w, o in zip(kept, outputs, strict=True)), atol=1e-9)
    model.save(tmp_path)
    state = json.loads((tmp_path / "blend.json").read_text())
    assert state["chosen"] == kept
    state["chosen"] = [0.7, 0.7]  # edited: no longer shares
    (tmp_path / "blend.json").write_text(json.dumps(state))
    with pytest.raises(DataError, match=r"its chosen weights \[0.7, 0.7\] are not 2 non-negative shares"):
        blend.BlendModel(members=members).load(tmp_path)


def test_a_value_blend_saved_before_members_were_judged_loads_with_equal_weights(tmp_path):
    from pipeline.models import blend

    X, y = values_table(n=200)
    model = blend.BlendModel(members="sk-ridge,sk-ridge", weights="1,1").fit(X, y)
    model.save(tmp_path)
    state = json.loads((tmp_path / "blend.json").read_text())
    assert "chosen" not in state  # as every blend.json written before
    old = blend.BlendModel(members="sk-ridge,sk-ridge").load(tmp_path)
    assert old.weights_ is None and old._weights().tolist() == [0.5, 0.5]
    np.testing.assert_allclose(old.predict(X), model.predict(X))


def test_a_left_out_member_is_not_refitted_and_not_asked_to_predict(monkeypatch):
    from pipeline.models import blend

    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = 20.0 * ((X[:, 0] > 0) ^ (X[:, 1] > 0)) + rng.normal(size=400)
    fitted = []
    real_fit = SkRidge.fit
    monkeypatch.setattr(SkRidge, "fit", lambda self, X, y, *a, **k: fitted.append(len(X)) or real_fit(self, X, y))
    model = blend.BlendModel(members="sk-ridge,sk-gbm", seed=2).fit(X, y)
    lasso, trees = model.models_
    assert model.weights_.tolist() == [0.0, 1.0] and fitted == [300]  # judged on 3/4 of the rows, not refitted
    monkeypatch.setattr(type(lasso), "predict_values", lambda self, X: np.full(len(X), np.nan))
    np.testing.assert_allclose(model.predict(X), trees.predict(X))  # its NaN outputs never reach the blend
    assert blend._left_out(np.array([np.nan, 2.0, 5.0])).tolist() == [0.0, 1.0, 0.0]
    assert blend._left_out(np.array([np.nan, np.inf])) is None


def test_a_value_blend_whose_judged_rows_hold_one_value_keeps_every_member(monkeypatch):
    from pipeline.models import blend
    from pipeline.models._boosting import inner_split

    members = (("catboost", {"iterations": 20}), ("sk-ridge", {}))  # early stopping on its own inner rows too
    monkeypatch.setitem(blend.DEFAULTS, "regression", members)
    X, _ = values_table(n=100)
    _, held = inner_split(None, 100, blend.HELD, 0)
    y = np.ones(100)
    y[held[0]] = 2.0  # all rows hold two values, the 3/4 a blend judges on hold one: catboost refuses to fit those
    model = blend.BlendModel().fit(X, y)
    assert model.weights_ is None and [m.name for m in model.models_] == ["catboost", "sk-ridge"]
    assert np.isfinite(model.predict(X)).all()


def test_ctrl_c_while_judging_keeps_the_members_judged_so_far(monkeypatch):
    from pipeline.models import blend

    X, y = values_table(n=200)
    fitted = []
    real_fit = SkRidge.fit

    def stopped(self, X, y, *a, **k):
        fitted.append(len(X))
        real_fit(self, X, y)
        self.interrupted_ = True  # as a member that caught Ctrl-C and kept what it had
        return self

    monkeypatch.setattr(SkRidge, "fit", stopped)
    model = blend.BlendModel(members="sk-ridge,sk-gbm").fit(X, y)
    assert model.interrupted_ and model.weights_ is None and fitted == [150]  # not refitted on all 200 rows
    assert model.models_[1].fitted_


def test_blend_json_nested_past_the_recursion_limit_is_one_line(tmp_path):
    from pipeline.models import blend

    (tmp_path / "blend.json").write_text('{"members": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DataError, match="blend.json cannot be read: maximum recursion depth exceeded"):
        blend.BlendModel().resolved(True, tmp_path)  # kc runs lists its weights as unreadable
    huge = {"members": [{"name": "sk-ridge", "folder": "a"}, {"name": "sk-gbm", "folder": "b"}],
            "chosen": [10**400, 0], "classes": None}
    (tmp_path / "blend.json").write_text(json.dumps(huge))  # past a float: OverflowError, not a ValueError
    with pytest.raises(DataError, match="blend.json cannot be read: int too large"):
        blend.BlendModel().resolved(True, tmp_path)
    with pytest.raises(DataError, match="the blend's saved members cannot be loaded"):
        blend.BlendModel().load(tmp_path)
    (tmp_path / "blend.json").unlink()
    (tmp_path / "blend.json").symlink_to(tmp_path / "gone.json")  # dangling: damaged, not absent
    with pytest.raises(DataError, match="blend.json cannot be read"):
        blend.BlendModel().resolved(True, tmp_path)
    with pytest.raises(DataError, match="the blend's saved members cannot be loaded"):
        blend.BlendModel().load(tmp_path)


def test_only_a_value_blend_given_no_weights_and_enough_rows_chooses():
    from pipeline.models import blend

    X, y = values_table(n=200)
    assert blend.BlendModel(members="sk-ridge,sk-ridge", weights="1,3").fit(X, y).weights_ is None
    assert blend.BlendModel(members="sk-ridge,sk-ridge").fit(X[:blend.CHOOSES_FROM - 1],
                                                             y[:blend.CHOOSES_FROM - 1]).weights_ is None
    Xc, yc = classes_table(n=200)
    assert blend.BlendModel(members="sk-logistic,sk-logistic").fit(Xc, yc).weights_ is None


def test_blend_weights_name_each_member_and_the_last_stands_for_the_rest():
    from pipeline.models import blend

    three = "sk-logistic,sk-gbm,catboost"
    assert blend.BlendModel(members=three, weights="2,1")._weights().tolist() == [0.5, 0.25, 0.25]
    assert blend.BlendModel(members=three, weights="1,1,2")._weights().tolist() == [0.25, 0.25, 0.5]
    assert blend.BlendModel(members="sk-ridge,sk-gbm", weights="3,1")._weights().tolist() == [0.75, 0.25]
    with pytest.raises(UsageError, match="expected 3 non-negative numbers"):
        blend.BlendModel(members=three, weights="1,1,1,1")._weights()
    assert [name for name, _ in blend.DEFAULTS["classes"]] == three.split(",")


@pytest.mark.slow
@pytest.mark.parametrize("make", [lambda: LinearModel(epochs=2), lambda: TabularModel(epochs=2)])
def test_small_tables_train_on_one_thread_and_give_the_threads_back(make, monkeypatch):
    import torch

    from pipeline.models import _torch

    X, y = classes_table(n=200)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        make().fit(X, y, X[:50], y[:50], on_epoch=lambda _: seen.append(torch.get_num_threads()))
        assert seen == [1, 1] and torch.get_num_threads() == 2

        def fail(_):
            raise RuntimeError("stop")

        with pytest.raises(RuntimeError, match="stop"):  # a fit that fails still gives the threads back
            make().fit(X, y, X[:50], y[:50], on_epoch=fail)
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(_torch, "SMALL_TABLE", X.size)  # this table is no longer small: threads are left alone
        seen.clear()
        make().fit(X, y, X[:50], y[:50], on_epoch=lambda _: seen.append(torch.get_num_threads()))
        assert seen == [2, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_tabular_clips_inputs_into_the_range_it_was_trained_on(tmp_path):
    import torch

    # a network extrapolates wildly: a house ten times larger than any it saw is priced as the largest it saw
    X, y = values_table(n=200)
    model = TabularModel(epochs=2).fit(X, y)
    far = X[:5].copy()
    far[:, 0] = 1000 * np.abs(X[:, 0]).max()
    edge = far.copy()
    edge[:, 0] = X[:, 0].max()
    assert np.array_equal(model.predict(far), model.predict(edge))
    model.save(tmp_path)
    loaded = TabularModel(epochs=2).load(tmp_path)
    assert np.array_equal(loaded.predict(far), model.predict(edge))

    state = torch.load(tmp_path / "weights.pt", weights_only=True)  # a run saved before inputs were clipped
    del state["input_low"], state["input_high"]
    torch.save(state, tmp_path / "weights.pt")
    old = TabularModel(epochs=2).load(tmp_path)
    assert old.low_ is None and not np.array_equal(old.predict(far), old.predict(edge))


def test_saving_a_scikit_learn_model_does_not_load_torch(tmp_path):
    # skops lists scikit-learn's estimators on import, which used to import torch through scikit-learn's array-API
    # shim: ~500 MB and seconds for every table run. A fresh process, since this one may have torch already.
    import subprocess
    import sys

    code = ("import sys, pathlib, numpy as np\nfrom pipeline.models.sklearn_models import SkLogistic\n"
            "X = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)\n"
            f"folder = pathlib.Path({str(tmp_path)!r})\n"
            "SkLogistic().fit(X, (X[:, 0] > 0).astype(np.int64)).save(folder)\n"
            "SkLogistic().load(folder)\n"
            "print('torch' in sys.modules, 'skops.io' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


def test_kc_models_names_the_blends_default_members_for_values_and_for_classes():
    from pipeline.models import MODELS, blend

    for kind, members in blend.DEFAULTS.items():
        named = " + ".join(name for name, _ in members)
        assert named in MODELS["blend"].description, (kind, MODELS["blend"].description)
