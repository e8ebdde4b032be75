"""Exact (MILP) verification of one-hidden-layer networks against a dense grid of the ball, CROWN
and attacks: certified <= exact <= attacked <= clean, per sample."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.trainables.relax_models import digits, random_2d_net, trained
from tests.trainables.test_metrics_crown import _ball_grid, _margins
from trainables.attacks import apgd
from trainables.errors import ConfigError
from trainables.metrics._exact import exact_min_margins, exact_robust_mask
from trainables.metrics._relax import certified_mask, margin_lower_bounds


@pytest.mark.parametrize("factorized", [False, True])
def test_milp_minimum_matches_a_dense_grid_on_2d_networks(factorized):
    net = random_2d_net((10,), seed=3 + factorized, factorized=factorized)
    x = torch.tensor([[0.5, 0.5], [0.03, 0.9], [0.3, 0.7]])
    with torch.no_grad():
        y = net(x).argmax(1)
    eps = 0.2
    lower, upper = exact_min_margins(net, x, y, eps)
    crown = margin_lower_bounds(net, x, y, "linf", eps, "crown")
    # Lipschitz constant of the margins over the grid's spacing bounds how far the grid's minimum
    # can sit above the true minimum.
    w = [m for m in net if isinstance(m, nn.Linear)]
    lip = float(w[0].weight.detach().abs().sum(1).max() * 2 * w[-1].weight.detach().abs().max() * 10)
    spacing = 2 * eps / 240
    for i in range(len(x)):
        grid_min = _margins(net, _ball_grid(x[i], "linf", eps), int(y[i])).min(0).values
        grid_min[y[i]] = math.inf
        finite = torch.isfinite(grid_min)
        assert torch.allclose(lower[i][finite], upper[i][finite], atol=1e-6)
        assert (upper[i][finite] <= grid_min[finite] + 1e-6).all()
        assert (upper[i][finite] >= grid_min[finite] - lip * spacing).all()
        assert (crown[i][finite] <= lower[i][finite] + 1e-6).all()


@pytest.mark.parametrize("eps", [0.06])
def test_certified_exact_attacked_clean_chain_per_sample(eps):
    model = trained("fcn")
    x, y = digits()[2][:40], digits()[3][:40]
    robust, unknown = exact_robust_mask(model, x, y, eps, time_limit=5.0)
    crown = certified_mask(model, x, y, "linf", eps, "crown")
    x_adv = apgd(model, x, y, norm="linf", eps=eps, steps=100, seed=0)
    with torch.no_grad():
        attacked = model(x_adv).argmax(1) == y
        clean = model(x).argmax(1) == y
    assert not bool(unknown.any())
    assert bool((~crown | robust).all()), "CROWN certified a sample the MILP found adversarial"
    assert bool((~robust | attacked).all()), "the attack fooled a sample the MILP proved robust"
    assert bool((~attacked | clean).all())
    # The chain is not degenerate: at these budgets some samples are fooled and some are robust.
    assert 0 < int(robust.sum()) < int(clean.sum())


def test_exact_refuses_what_it_cannot_solve():
    x, y = digits()[2][:2], digits()[3][:2]
    with pytest.raises(ConfigError, match="one-hidden-layer"):
        exact_robust_mask(trained("fcn2"), x, y, 0.01)
    with pytest.raises(ConfigError, match="linf"):
        exact_robust_mask(trained("fcn"), x, y, 0.01, norm="l2")
