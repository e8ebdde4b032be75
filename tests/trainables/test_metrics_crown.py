"""Linear-relaxation certificates (IBP, CROWN) against independent computations: the true minimum
margin over a dense grid of 2-D balls, exact margins at eps 0, random and adversarial points, the
global-product certificate, and attacks (certified samples must never be fooled)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.trainables.relax_models import digits, random_2d_net, trained
from trainables.attacks import apgd, minimal_eps
from trainables.errors import ConfigError
from trainables.metrics import certified_radius
from trainables.metrics._relax import (
    certified_mask,
    certified_radius_relaxed,
    margin_lower_bounds,
)
from trainables.metrics._relax._bounds import _all_bounds
from trainables.models import build_model

TRAINED = ["fcn", "fcn_lowrank", "cnn"]
EPS = {"linf": 0.01, "l2": 0.1}


def _margins(model: nn.Module, points: torch.Tensor, label: int) -> torch.Tensor:
    """f_label - f_j at every point, (P, K) in float64."""
    with torch.no_grad():
        logits = model.double()(points.double())
    model.float()
    return logits[:, label : label + 1] - logits


def _ball_grid(x: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Points of the eps ball around a 2-D x within [0,1]^2, boundary included (float64: a
    float32 corner can lie outside the ball by rounding)."""
    x = x.double()
    if norm == "linf":
        lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
        a = torch.linspace(0, 1, 241, dtype=torch.float64)
        g0, g1 = torch.meshgrid(lo[0] + a * (hi[0] - lo[0]), lo[1] + a * (hi[1] - lo[1]),
                                indexing="ij")
        return torch.stack([g0.flatten(), g1.flatten()], 1)
    radius = torch.linspace(0, eps, 120, dtype=torch.float64)
    angle = torch.linspace(0, 2 * math.pi, 721, dtype=torch.float64)
    r, t = torch.meshgrid(radius, angle, indexing="ij")
    pts = x.double() + torch.stack([r * torch.cos(t), r * torch.sin(t)], -1).reshape(-1, 2)
    # Projecting onto the box moves no point farther from x (x is in the box): still in the ball.
    return pts.clamp(0, 1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize(
    ("hidden", "factorized"),
    [((8,), False), ((8,), True), ((6, 6), True), ((5, 6, 5), False), ((6, 5, 6), True)],
)
def test_margin_bounds_are_below_the_true_minimum_over_a_dense_grid(hidden, factorized, norm):
    net = random_2d_net(hidden, seed=len(hidden) * 10 + factorized, factorized=factorized)
    x = torch.tensor([[0.5, 0.5], [0.03, 0.9], [0.3, 0.7], [0.98, 0.02]])
    with torch.no_grad():
        y = net(x).argmax(1)
    for eps in (0.05, 0.2):
        crown = margin_lower_bounds(net, x, y, norm, eps, "crown")
        ibp = margin_lower_bounds(net, x, y, norm, eps, "ibp")
        for i in range(len(x)):
            true_min = _margins(net, _ball_grid(x[i], norm, eps), int(y[i])).min(0).values
            true_min[y[i]] = math.inf
            assert (crown[i] <= true_min + 1e-9).all(), (i, eps, crown[i], true_min)
            assert (ibp[i] <= true_min + 1e-9).all(), (i, eps, ibp[i], true_min)
            assert (crown[i] >= ibp[i]).all()
        # Not vacuous: CROWN is within reach of the truth on these small balls somewhere.
        assert bool((crown[:, :] > ibp).any())


@pytest.mark.parametrize("kind", ["fcn", "fcn_lowrank", "cnn"])
def test_bounds_at_eps_zero_are_the_exact_margins(kind):
    """eps = 0: every neuron is fixed, so the backward pass (conv transpose, BatchNorm, max-pool,
    global mean, head) must reproduce f_y - f_j exactly."""
    model = trained(kind)
    x, y = digits()[2][:16], digits()[3][:16]
    with torch.no_grad():
        logits = model(x).double()
    true = logits.gather(1, y[:, None]) - logits
    for method in ("crown", "ibp"):
        bounds = margin_lower_bounds(model, x, y, "linf", 0.0, method)
        finite = torch.isfinite(bounds)
        assert torch.allclose(bounds[finite], true[finite], atol=1e-4), method


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("kind", TRAINED)
def test_bounds_hold_at_random_and_adversarial_points(kind, norm):
    model = trained(kind)
    x, y = digits()[2][:40], digits()[3][:40]
    eps = EPS[norm]
    bounds = margin_lower_bounds(model, x, y, norm, eps, "crown")
    g = torch.Generator().manual_seed(1)
    points = [apgd(model, x, y, norm=norm, eps=eps, steps=30, seed=0)]
    for _ in range(5):
        step = torch.rand(x.shape, generator=g) * 2 - 1
        if norm == "l2":
            step = step / step.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        points.append((x + eps * step).clamp(0, 1))
    for xp in points:
        with torch.no_grad():
            logits = model(xp).double()
        margins = logits.gather(1, y[:, None]) - logits
        finite = torch.isfinite(bounds)
        assert (bounds[finite] <= margins[finite] + 1e-5).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("kind", ["fcn2", "fcn_lowrank", "cnn"])
def test_crown_is_tighter_than_ibp_on_trained_models(kind, norm):
    model = trained(kind)
    x, y = digits()[2][:60], digits()[3][:60]
    raw, _ = _all_bounds(model, x, y, norm, EPS[norm], "crown", 32, 4096)
    finite = torch.isfinite(raw["ibp"])
    # CROWN's own backward bound, before taking the max with IBP, is the tighter one on average.
    assert float(raw["crown"][finite].mean()) > float(raw["ibp"][finite].mean())
    crown = certified_mask(model, x, y, norm, EPS[norm], "crown")
    ibp = certified_mask(model, x, y, norm, EPS[norm], "ibp")
    assert bool((crown | ~ibp).all())  # every IBP-certified sample is CROWN-certified


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("kind", TRAINED)
def test_certified_implies_attack_fails_and_beats_the_global_product(kind, norm):
    """Per sample: global-certified => CROWN-certified => not fooled by APGD => correct clean."""
    model = trained(kind)
    x, y = digits()[2][:120], digits()[3][:120]
    eps = EPS[norm]
    crown = certified_mask(model, x, y, norm, eps, "crown")
    x_adv = apgd(model, x, y, norm=norm, eps=eps, steps=100, seed=0)
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
        clean = model(x).argmax(1) == y
    glob = certified_radius(model, x, y, norm) > eps
    assert bool((~crown | robust).all()), "a CROWN-certified sample was fooled"
    assert bool((~robust | clean).all())
    assert bool((~glob | crown).all()), "global product certified a sample CROWN did not"
    assert crown.sum() > glob.sum()  # strictly better somewhere: the check is not vacuous


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("kind", ["fcn", "cnn"])
def test_bisection_radius_is_certified_and_between_global_and_empirical(kind, norm):
    model = trained(kind)
    x, y = digits()[2][:40], digits()[3][:40]
    eps_max, iters = (0.25, 8) if norm == "linf" else (2.0, 8)
    radius = certified_radius_relaxed(model, x, y, norm, eps_max, iters)
    tol = eps_max / 2**iters
    positive = radius > 0
    assert positive.sum() >= 10
    assert bool(certified_mask(model, x[positive], y[positive], norm, radius[positive]).all())
    # The returned radius is within tol of where certification stops.
    not_at_cap = positive & (radius < eps_max)
    assert not bool(certified_mask(model, x[not_at_cap], y[not_at_cap], norm,
                                   radius[not_at_cap] + 1.01 * tol).any())
    glob = certified_radius(model, x, y, norm)
    assert bool((radius >= torch.minimum(glob, torch.tensor(eps_max)) - tol).all())
    r_emp = minimal_eps(model, x, y, norm=norm, eps_max=eps_max, steps=30, bisection_steps=8)
    assert bool((radius <= r_emp.double()).all()), "certified radius above an adversarial example"


def test_unsupported_modules_raise_config_error():
    mean, std = torch.tensor([0.5]), torch.tensor([0.2])
    x, y = torch.rand(3, 1, 8, 8), torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ConfigError, match="Tanh"):
        margin_lower_bounds(nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.Tanh(),
                                          nn.Linear(4, 3)), x, y, "linf", 0.1)
    resnet = build_model("resnet18", input_shape=(1, 8, 8), num_classes=3, mean=mean, std=std,
                         width=8)
    with pytest.raises(ConfigError, match="residual"):
        margin_lower_bounds(resnet, x, y, "linf", 0.1)

    class Custom(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :3]

    with pytest.raises(ConfigError, match="Custom"):
        margin_lower_bounds(Custom(), x, y, "l2", 0.1)

    class Reordered(nn.Sequential):  # forward is not the modules in order
        def forward(self, x):
            return self[3](torch.relu(self[1](self[0](x))) * 2.0)

    with pytest.raises(ConfigError, match="differs from model"):
        margin_lower_bounds(Reordered(nn.Flatten(), nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 3)),
                            x, y, "linf", 0.1)
    with pytest.raises(ConfigError, match="method"):
        margin_lower_bounds(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), x, y, "linf", 0.1,
                            "deeppoly")
    with pytest.raises(ConfigError, match="eps"):
        margin_lower_bounds(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), x, y, "linf", -0.1)
