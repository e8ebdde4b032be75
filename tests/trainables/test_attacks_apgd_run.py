"""The lean APGD run is pyautoattack's attack_single_run bit for bit."""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.trainables.attacks_models import digits, trained_digits_mlp
from trainables.attacks._apgd_run import apgd_single_run, library_single_run

EPS = {"linf": 0.1, "l2": 0.6}


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return trained_digits_mlp().eval()


@pytest.fixture(scope="module")
def data():
    _, _, x_test, y_test = digits()
    return x_test[:80], y_test[:80]


def _start(x: torch.Tensor, eps: torch.Tensor, norm: str, gen: torch.Generator) -> torch.Tensor:
    if norm == "linf":
        d = 2 * torch.rand(x.shape, generator=gen) - 1
        d = d / d.flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    else:
        d = torch.randn(x.shape, generator=gen)
        d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return (x + eps * d).clamp(0, 1)


@pytest.mark.parametrize("loss", ["ce", "dlr-targeted"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_equals_the_library_run_bit_for_bit(model, data, norm, loss):
    x, y = data
    gen = torch.Generator().manual_seed(0)
    # Per-sample eps from 0 to twice the usual budget: some rows are fooled, some not.
    eps = (torch.rand(len(x), generator=gen) * 2 * EPS[norm]).view(-1, 1, 1, 1)
    start = _start(x, eps, norm, gen)
    with torch.no_grad():
        target = model(x).sort(dim=1)[1][:, -3] if loss == "dlr-targeted" else None
    run = dict(norm=norm, eps=eps, n_iter=100, loss=loss, y_target=target)
    # 100 iterations: every step-size checkpoint of AutoAttack's schedule is crossed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's zero-gradient warning, on both sides
        expected = library_single_run(model, x, y, start, **run)
        got = apgd_single_run(model, x, y, start, **run)
    names = ("x_best", "acc", "loss_best", "x_best_adv")
    for name, a, b in zip(names, expected, got):
        assert torch.equal(a.detach(), b), name
    fooled = ~got[1]
    assert 0 < fooled.sum() < len(x)  # both outcomes are compared


def test_rejects_a_loss_without_its_target(model, data):
    x, y = data
    eps = torch.full((len(x), 1, 1, 1), 0.1)
    with pytest.raises(ValueError, match="y_target"):
        apgd_single_run(model, x, y, x, norm="linf", eps=eps, n_iter=2, loss="dlr-targeted")
    with pytest.raises(ValueError, match="norm"):
        apgd_single_run(model, x, y, x, norm="l1", eps=eps, n_iter=2)
