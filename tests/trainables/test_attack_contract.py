"""The contract every registered attack keeps, for every norm: adversarial examples stay in the
eps ball and the [0,1] box, are the same under the same seed, and are never weaker than no attack.

Parametrized over trainables.attacks.ATTACK_RUNNERS x schema.NORMS: a new attack (one module plus
one registry line) is covered here without editing this file.
"""

from __future__ import annotations

import pytest
import torch

from tests.trainables.attacks_models import accuracy, digits, trained_digits_mlp
from trainables.attacks import ATTACK_RUNNERS, run_attack
from trainables.schema import NORMS

N = 32
# Budgets in pixel units at which the digits MLP is far from robust, so "not weaker than no
# attack" is a real comparison and not 0 <= 0.
EPS = {"linf": 0.2, "l2": 1.5}
# Float slack for the projections (pixel units).
TOL = 1e-5


def distance(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def attack(name: str, norm: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _, _, x, y = digits()
    x, y = x[:N], y[:N]
    x_adv = run_attack(trained_digits_mlp(), x, y, name=name, norm=norm, eps=EPS[norm], steps=10,
                       restarts=1, seed=seed)
    return x, y, x_adv


CASES = [(name, norm) for name in sorted(ATTACK_RUNNERS) for norm in NORMS]


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_attack_keeps_the_ball_the_box_and_its_seed(name, norm):
    x, y, x_adv = attack(name, norm, seed=3)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float(distance(x_adv - x, norm).max()) <= EPS[norm] * (1 + TOL) + TOL
    assert torch.equal(x_adv, attack(name, norm, seed=3)[2])
    model = trained_digits_mlp()
    clean = accuracy(model, x, y)
    assert clean > 0.8  # the model is worth attacking
    assert accuracy(model, x_adv, y) <= clean
    assert accuracy(model, x_adv, y) < clean  # at these budgets every attack finds something


def test_unknown_attack_names_the_registered_ones():
    from trainables.errors import ConfigError

    x, y = digits()[2][:2], digits()[3][:2]
    with pytest.raises(ConfigError, match="pgd"):
        run_attack(trained_digits_mlp(), x, y, name="nope", norm="linf", eps=0.1)
