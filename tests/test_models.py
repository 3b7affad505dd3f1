import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from pipeline import competitions, convert
from pipeline.models import model_class
from pipeline.models.base import NotFittedError
from pipeline.models.knn import KNNModel, deskew
from pipeline.models.linear import LinearModel
from pipeline.workspace import Workspace


@pytest.fixture
def titanic_data(fetched):
    return convert.load_dataset(competitions.get("titanic"), Workspace(fetched))


@pytest.fixture
def digit_data(fetched):
    return convert.load_dataset(competitions.get("digit-recognizer"), Workspace(fetched))


def test_logistic_gradient_descent_matches_scikit_learn(titanic_data):
    X, y = titanic_data.X, titanic_data.y
    C = 0.5
    ours = LinearModel(epochs=1500, lr=0.5, bs=len(X), momentum=0.9, weight_decay=1 / (C * len(X))).fit(X, y)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, y)
    assert np.allclose(ours.weight_[:, 0].numpy(), ref.coef_[0], atol=5e-3)
    assert ours.bias_.item() == pytest.approx(ref.intercept_[0], abs=5e-3)
    assert np.allclose(ours.predict_proba(X), ref.predict_proba(X), atol=2e-3)


def test_softmax_gradient_descent_matches_scikit_learn(digit_data):
    from pipeline import images

    X, y = digit_data.X[:200], digit_data.y[:200]
    flat = images.to_float(X).reshape(len(X), -1)
    C = 0.01
    ours = LinearModel(epochs=1500, lr=0.1, bs=len(X), momentum=0.9, weight_decay=1 / (C * len(X))).fit(X, y)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(flat, y)
    # softmax logits are defined up to a constant per row, so compare probabilities
    assert np.abs(ours.predict_proba(X) - ref.predict_proba(flat)).max() < 5e-3


def test_linear_learns_and_records_history(titanic_data):
    X, y = titanic_data.X, titanic_data.y
    seen = []
    model = LinearModel(epochs=5, bs=16, lr=0.05).fit(X[:250], y[:250], X[250:], y[250:], on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [1, 2, 3, 4, 5] and model.history_ == seen
    assert np.mean(model.predict(X[250:]) == y[250:]) > 0.7


def test_predict_before_fit_is_a_clear_error():
    with pytest.raises(NotFittedError, match="this linear model is not fitted yet"):
        LinearModel().predict(np.zeros((2, 3), np.float32))


def plain_knn(train, labels, query, k):
    out = []
    for q in query:
        d = [float(np.sum((q - t) ** 2)) for t in train]
        order = sorted(range(len(train)), key=lambda i: (d[i], i))[:k]
        out.append(order)
    return np.array(out)


def test_knn_neighbours_match_a_plain_distance_loop(digit_data):
    X, y = digit_data.X[:150], digit_data.y[:150]
    q = digit_data.X_test[:20]
    model = KNNModel(k=3, deskew=False, pca=0, batch=7).fit(X, y)
    d2, idx = model.kneighbors(q)
    expected = plain_knn(X.reshape(150, -1) / 255.0, y, q.reshape(20, -1) / 255.0, 3)
    assert np.array_equal(idx, expected)
    direct = ((q.reshape(20, 1, -1) / 255.0 - X.reshape(1, 150, -1) / 255.0) ** 2).sum(-1)
    assert np.allclose(d2, np.take_along_axis(direct, expected, 1), atol=1e-3)


def test_knn_uniform_vote(digit_data):
    X, y = digit_data.X[:150], digit_data.y[:150]
    model = KNNModel(k=5, weighting="uniform", deskew=False, pca=0).fit(X, y)
    _, idx = model.kneighbors(digit_data.X_test[:10])
    votes = np.array([np.bincount(y[row], minlength=10) for row in idx]) / 5
    assert np.allclose(model.predict_proba(digit_data.X_test[:10]), votes)


def test_knn_with_pca_and_deskew_classifies_fixtures(digit_data):
    X, y = digit_data.X, digit_data.y
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


def test_save_and_load_round_trip(titanic_data, tmp_path):
    X, y = titanic_data.X, titanic_data.y
    for name in ("linear", "knn", "sk-logistic"):
        cls = model_class(name, "tabular")
        model = cls().fit(X, y)
        folder = tmp_path / name
        folder.mkdir()
        model.save(folder)
        again = cls.from_params(model.params()).load(folder)
        assert np.allclose(again.predict_proba(X), model.predict_proba(X), atol=1e-6), name


@pytest.mark.slow
def test_cnn_one_epoch_and_round_trip(digit_data, tmp_path):
    from pipeline.models.cnn import CNNModel

    X, y = digit_data.X, digit_data.y
    model = CNNModel(epochs=1, bs=32, width=8).fit(X[:250], y[:250], X[250:], y[250:])
    assert len(model.history_) == 1
    proba = model.predict_proba(X[250:])
    assert proba.shape == (50, 10) and np.allclose(proba.sum(1), 1, atol=1e-4)
    model.save(tmp_path)
    again = CNNModel(width=8).load(tmp_path)
    assert np.allclose(again.predict_proba(X[250:]), proba, atol=1e-5)


def test_augmentation_never_flips():
    import torch

    from pipeline.models.cnn import augment

    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 4:24, 6:9] = 1.0  # ink on the left
    out = augment(x, torch.Generator().manual_seed(0), rotate=10, zoom=0.1, shift=2)
    cols = torch.arange(28.0)
    centre = (out.sum((1, 2)) * cols).sum(1) / out.sum((1, 2, 3))
    assert (centre < 11).all()  # still on the left: shifted a little, never mirrored
