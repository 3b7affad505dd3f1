"""Ghost batch norm: shards of a batch through replicas sharing one network's parameters, side by side on threads."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.models._ghost import SeededDropout, Shards, twin

DIGITS = Path(__file__).parents[1] / "fixtures" / "digit-recognizer"


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 3))


def batch(n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def test_a_twin_shares_the_parameters_and_keeps_its_own_batch_norm_statistics():
    net = small_net()
    other = twin(net)
    assert all(a is b for a, b in zip(net.parameters(), other.parameters(), strict=True))
    assert net[1].running_mean is not other[1].running_mean
    x, _ = batch()
    other(x)  # training mode: only the twin's statistics move
    assert torch.equal(net[1].running_mean, torch.zeros(4)) and not torch.equal(other[1].running_mean, torch.zeros(4))


@pytest.mark.parametrize("threads", [1, 2])
def test_shards_give_the_gradient_of_each_shard_normalised_on_its_own(threads):
    loss = nn.functional.cross_entropy
    x, y = batch(10)
    net = small_net()
    shards = Shards(net, 2, threads, seed=0)
    pred, mean_loss = shards.train_step(x, y, loss)
    shards.close()
    # independent answer: two plain copies, each shard's mean loss weighted by its rows, gradients added by hand
    expected, total = [torch.zeros_like(p) for p in net.parameters()], 0.0
    for rows in (slice(0, 5), slice(5, 10)):
        copy_ = small_net()
        part = loss(copy_(x[rows]), y[rows]) * 0.5
        part.backward()
        total += float(part.detach())
        expected = [e + p.grad for e, p in zip(expected, copy_.parameters(), strict=True)]
    for got, want in zip(net.parameters(), expected, strict=True):
        assert torch.allclose(got.grad, want, atol=1e-6)
    assert pred.shape == (10, 3) and abs(float(mean_loss) - total) < 1e-6
    # and not the whole batch's gradient: batch norm saw five rows at a time
    whole = small_net()
    loss(whole(x), y).backward()
    assert not torch.allclose(whole[0].weight.grad, net[0].weight.grad, atol=1e-4)


def test_without_batch_norm_the_shards_sum_to_the_whole_batch_gradient():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 3))
    x, y = batch(9)  # shards of 5 and 4 rows: weighted by rows, not halved
    shards = Shards(net, 2, 2, seed=0)
    shards.train_step(x, y, nn.functional.cross_entropy)
    shards.close()
    whole = copy.deepcopy(net)
    whole.zero_grad()
    nn.functional.cross_entropy(whole(x), y).backward()
    assert torch.allclose(net[1].weight.grad, whole[1].weight.grad, atol=1e-6)


def test_prediction_across_threads_is_the_networks_own():
    net = small_net().eval()
    x, _ = batch(7)
    shards = Shards(net, 2, 2, seed=0)
    got = shards.predict(x)
    shards.close()
    with torch.no_grad():
        assert torch.allclose(got, net(x), atol=1e-6) and not got.requires_grad


def test_seeded_dropout_draws_from_its_generator_and_only_in_training():
    x = torch.ones(1000)
    a, b = SeededDropout(0.25), SeededDropout(0.25)
    a.gen, b.gen = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.manual_seed(0)
    first = a(x)
    torch.manual_seed(99)  # torch's global generator does not matter
    assert torch.equal(first, b(x)) and 150 < int((first == 0).sum()) < 350 and torch.allclose(first.max(), x[0] / 0.75)
    assert torch.equal(a.eval()(x), x)
    plain = SeededDropout(0.25)  # no generator: nn.Dropout's own draws
    torch.manual_seed(5)
    mine = plain(x)
    torch.manual_seed(5)
    assert torch.equal(mine, nn.Dropout(0.25)(x))


@pytest.mark.slow
def test_a_ghost_fit_is_the_same_on_one_thread_as_on_two_and_under_a_long_time_limit():
    from pipeline.models.cnn import CNNModel

    train = np.loadtxt(DIGITS / "train.csv", delimiter=",", skiprows=1, dtype=np.int64)
    X, y = train[:, 1:].astype(np.uint8).reshape(-1, 28, 28), train[:, 0]
    outputs = []
    for threads, limit in ((1, 0.0), (2, 0.0), (2, 1e6)):
        model = CNNModel(epochs=2, bs=32, width=8, ghost=2, threads=threads, time_limit=limit)
        outputs.append(model.fit(X[:250], y[:250], X[250:], y[250:]).predict_proba(X[250:]))
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[1], outputs[2])
    plain = CNNModel(epochs=2, bs=32, width=8, threads=2).fit(X[:250], y[:250], X[250:], y[250:])
    assert not np.allclose(plain.predict_proba(X[250:]), outputs[0], atol=1e-4)  # ghost=2 is another recipe
