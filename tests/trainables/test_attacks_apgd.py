"""APGD and AutoAttack through pyautoattack: strength, budgets, seeding, small label sets."""

from __future__ import annotations

import pytest
import torch

from tests.trainables.attacks_models import accuracy, digits, trained_digits_mlp
from trainables.attacks import apgd, autoattack, pgd, run_attack
from trainables.errors import ConfigError

BUDGETS = {"linf": 0.1, "l2": 0.6}


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return trained_digits_mlp()


@pytest.fixture(scope="module")
def test_digits():
    _, _, x_test, y_test = digits()
    return x_test, y_test


def _size(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_ce_is_at_least_as_strong_as_pgd(model, test_digits, norm):
    x, y = test_digits
    eps = BUDGETS[norm]
    pgd_acc = accuracy(model, pgd(model, x, y, norm=norm, eps=eps, steps=20, seed=0), y)
    x_adv = run_attack(model, x, y, name="apgd-ce", norm=norm, eps=eps, steps=20, seed=0)
    assert accuracy(model, x_adv, y) <= pgd_acc + 0.02
    assert _size(x_adv - x, norm).max().item() <= eps + 1e-6
    assert 0.0 <= x_adv.min().item() and x_adv.max().item() <= 1.0


def test_apgd_dlr_and_restarts(model, test_digits):
    x, y = test_digits[0][:200], test_digits[1][:200]
    clean = accuracy(model, x, y)
    one = accuracy(model, apgd(model, x, y, norm="linf", eps=0.1, loss="dlr", steps=10,
                               restarts=1, seed=0), y)
    three = accuracy(model, apgd(model, x, y, norm="linf", eps=0.1, loss="dlr", steps=10,
                                 restarts=3, seed=0), y)
    assert three <= one < clean  # the first restart is the same run, later ones only add


def test_apgd_per_sample_budgets(model, test_digits):
    x, y = test_digits[0][:100], test_digits[1][:100]
    eps = torch.linspace(0.0, 1.0, 100)
    x_adv = apgd(model, x, y, norm="l2", eps=eps, steps=10, seed=0)
    assert (_size(x_adv - x, "l2") <= eps + 1e-6).all()
    assert torch.equal(x_adv[0], x[0])


def test_apgd_is_seeded_and_leaves_global_rng_alone(model, test_digits):
    x, y = test_digits[0][:100], test_digits[1][:100]
    state = torch.get_rng_state()
    a = apgd(model, x, y, norm="linf", eps=0.1, steps=10, seed=1)
    b = apgd(model, x, y, norm="linf", eps=0.1, steps=10, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the library seeds torch globally
    assert torch.equal(a, b)


def test_dlr_needs_three_classes():
    x = torch.rand(8, 5, generator=torch.Generator().manual_seed(0))
    model = torch.nn.Linear(5, 2)
    y = torch.zeros(8, dtype=torch.long)
    with pytest.raises(ConfigError, match="needs >= 3 classes"):
        run_attack(model, x, y, name="apgd-dlr", norm="linf", eps=0.1)
    # CE works with two classes.
    assert run_attack(model, x, y, name="apgd-ce", norm="linf", eps=0.1).shape == x.shape


def test_fast_autoattack_is_at_least_as_strong_as_apgd_ce(model, test_digits):
    x, y = test_digits[0][:200], test_digits[1][:200]
    ce = accuracy(model, apgd(model, x, y, norm="l2", eps=0.6, steps=20, seed=0), y)
    x_adv = autoattack(model, x, y, norm="l2", eps=0.6, version="fast", steps=20, seed=0)
    assert accuracy(model, x_adv, y) <= ce + 0.02
    assert _size(x_adv - x, "l2").max().item() <= 0.6 + 1e-6


def test_standard_autoattack_on_vector_data_with_three_classes():
    # Vector inputs go through Square as padded one-channel images; APGD-T is dropped (< 4
    # classes). Six samples keep Square's fixed 5000 queries cheap.
    gen = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand(6, 10, generator=gen)
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 3)
    with torch.no_grad():
        y = model(x).argmax(1)
    x_adv = run_attack(model, x, y, name="autoattack", norm="linf", eps=0.04, seed=0)
    assert x_adv.shape == x.shape
    assert _size(x_adv - x, "linf").max().item() <= 0.04 + 1e-6
    # A linear model is fooled exactly when the L-inf distance to its boundary is < eps.
    with torch.no_grad():
        logits = model(x)
    w = model.weight
    others = [[j for j in range(3) if j != int(c)] for c in y]
    dist = torch.stack([
        min((logits[i, y[i]] - logits[i, j]) / (w[y[i]] - w[j]).abs().sum() for j in others[i])
        for i in range(6)
    ])
    with torch.no_grad():
        fooled = model(x_adv).argmax(1) != y
    assert torch.equal(fooled, dist < 0.04), (dist, fooled)


def test_autoattack_rejects_per_sample_budgets(model, test_digits):
    x, y = test_digits[0][:4], test_digits[1][:4]
    with pytest.raises(ConfigError, match="one eps"):
        autoattack(model, x, y, norm="linf", eps=torch.tensor([0.1, 0.1, 0.2, 0.1]))
