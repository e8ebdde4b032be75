"""PGD: agreement with ART's independent implementation, and the invariants every attack keeps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tests.trainables.attacks_models import accuracy, digits, trained_digits_mlp
from trainables.attacks import pgd, run_attack
from trainables.errors import ConfigError

# Budgets where the trained digits MLP keeps between 10% and 90% robust accuracy.
BUDGETS = {"linf": (0.06, 0.1), "l2": (0.4, 0.6)}


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return trained_digits_mlp()


@pytest.fixture(scope="module")
def all_digits():
    """Every digit (train and test): attacks are compared on 1797 samples to keep noise low."""
    x_train, y_train, x_test, y_test = digits()
    return torch.cat([x_test, x_train]), torch.cat([y_test, y_train])


def _art_pgd_accuracy(model, x, y, *, norm, eps, steps, seed) -> float:
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(),
                                   input_shape=tuple(x.shape[1:]), nb_classes=10,
                                   clip_values=(0.0, 1.0))
    np.random.seed(seed)  # ART draws its random start from numpy's global RNG
    attack = ProjectedGradientDescentPyTorch(
        classifier, norm=np.inf if norm == "linf" else 2, eps=eps, eps_step=2.5 * eps / steps,
        max_iter=steps, num_random_init=1, batch_size=len(x), verbose=False)
    x_adv = torch.from_numpy(attack.generate(x.numpy(), y.numpy()))
    return accuracy(model, x_adv, y)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_matches_art_robust_accuracy(model, all_digits, norm):
    x, y = all_digits
    clean = accuracy(model, x, y)
    for eps in BUDGETS[norm]:
        # Three seeds each: the random start alone moves either attack by ~0.3 points.
        ours = np.mean([accuracy(model, pgd(model, x, y, norm=norm, eps=eps, steps=20, seed=s), y)
                        for s in range(3)])
        art = np.mean([_art_pgd_accuracy(model, x, y, norm=norm, eps=eps, steps=20, seed=s)
                       for s in range(3)])
        assert 0.1 < art < 0.9 and art < clean
        assert abs(ours - art) <= 0.01, (norm, eps, ours, art)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_ball_and_box_and_weakens_with_budget(model, all_digits, norm):
    x, y = all_digits[0][:400], all_digits[1][:400]
    budgets = (0.0, *BUDGETS[norm], 2 * BUDGETS[norm][1])
    accs = []
    for eps in budgets:
        x_adv = pgd(model, x, y, norm=norm, eps=eps, steps=10, seed=0)
        delta = (x_adv - x).flatten(1)
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert size.max().item() <= eps + 1e-6
        assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
        accs.append(accuracy(model, x_adv, y))
    assert accs[0] == accuracy(model, x, y)  # eps = 0 leaves x untouched
    assert all(b <= a for a, b in itertools.pairwise(accs)), accs


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_more_steps_do_not_help_the_model(model, all_digits, norm):
    x, y = all_digits[0][:500], all_digits[1][:500]
    eps = BUDGETS[norm][1]
    acc5 = accuracy(model, pgd(model, x, y, norm=norm, eps=eps, steps=5, seed=0), y)
    acc50 = accuracy(model, pgd(model, x, y, norm=norm, eps=eps, steps=50, seed=0), y)
    assert acc50 <= acc5 + 0.02


def test_restarts_keep_the_best_per_sample(model, all_digits):
    x, y = all_digits[0][:500], all_digits[1][:500]
    one = accuracy(model, pgd(model, x, y, norm="l2", eps=0.6, steps=5, restarts=1, seed=0), y)
    four = accuracy(model, pgd(model, x, y, norm="l2", eps=0.6, steps=5, restarts=4, seed=0), y)
    assert four <= one  # restart 1 is the same run; later ones only add adversarial examples


def test_eps_zero_returns_x_and_per_sample_budgets_are_respected(model, all_digits):
    x, y = all_digits[0][:64], all_digits[1][:64]
    assert torch.equal(pgd(model, x, y, norm="linf", eps=0.0), x)
    eps = torch.linspace(0, 0.2, 64)
    x_adv = pgd(model, x, y, norm="linf", eps=eps, seed=0)
    assert ((x_adv - x).flatten(1).abs().amax(1) <= eps + 1e-6).all()
    assert torch.equal(x_adv[0], x[0])


def test_same_seed_same_examples_and_global_rng_untouched(model, all_digits):
    x, y = all_digits[0][:100], all_digits[1][:100]
    state = torch.get_rng_state()
    a = pgd(model, x, y, norm="l2", eps=0.5, seed=7)
    b = pgd(model, x, y, norm="l2", eps=0.5, seed=7)
    c = pgd(model, x, y, norm="l2", eps=0.5, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(3)
    d = pgd(model, x, y, norm="l2", eps=0.5, seed=None)
    torch.manual_seed(3)
    assert torch.equal(d, pgd(model, x, y, norm="l2", eps=0.5, seed=None))


def test_model_mode_restored_and_parameter_grads_untouched(all_digits):
    from tests.trainables.attacks_models import mlp

    model = mlp(seed=1)
    model.train()
    model[2].eval()  # a mixed state must come back as it was, module by module
    x, y = all_digits[0][:32], all_digits[1][:32]
    for name in ("pgd", "apgd-ce"):
        run_attack(model, x, y, name=name, norm="linf", eps=0.1, steps=3)
        assert [m.training for m in model.modules()] == [True, True, True, False, True, True]
        assert all(p.grad is None for p in model.parameters())
        assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("kwargs, fragment", [
    ({"norm": "l1"}, "norm must be one of"),
    ({"eps": -0.1}, "eps must be finite and >= 0"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"restarts": 0}, "restarts must be an integer >= 1"),
    ({"step_size": 0.0}, "step_size must be > 0"),
])
def test_bad_arguments_raise_config_error(model, all_digits, kwargs, fragment):
    x, y = all_digits[0][:4], all_digits[1][:4]
    args = {"norm": "linf", "eps": 0.1, **kwargs}
    with pytest.raises(ConfigError, match=fragment):
        pgd(model, x, y, **args)


def test_inputs_outside_pixel_space_are_rejected(model, all_digits):
    x, y = all_digits[0][:4], all_digits[1][:4]
    with pytest.raises(ConfigError, match="pixel space"):
        pgd(model, x * 16, y, norm="linf", eps=0.1)
    with pytest.raises(ConfigError, match="attack name must be one of"):
        run_attack(model, x, y, name="fgsm", norm="linf", eps=0.1)
