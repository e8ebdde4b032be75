"""Certified radius against exact boundary distances and attacks; the loss-gap bound against
measured CE increases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.trainables.metrics_models import FCN, blobs, trained_blob_fcn
from trainables.metrics import (
    alignment_estimate_gap,
    certified_accuracy,
    certified_radius,
    first_order_gap,
    loss_gap_bound,
)

ORDER = {"linf": math.inf, "l2": 2.0}
DUAL = {"linf": 1, "l2": 2}


def _linear_model(weight: torch.Tensor, std: float, seed: int) -> FCN:
    """f(x) = C W (x - mu) / std + c: no ReLU, so the decision regions are exact polyhedra."""
    torch.manual_seed(seed)
    dim = weight.shape[1]
    model = FCN(
        (dim,), [weight.shape[0]], 4, torch.full((1,), 0.4), torch.full((1,), std), relu=False
    )
    with torch.no_grad():
        model.encoder[0].weight.copy_(weight)
    return model.eval()


def _exact_linear_distance(model: FCN, x: torch.Tensor, y: torch.Tensor, p: str) -> np.ndarray:
    """min_j (f_y - f_j) / ||grad_x (f_y - f_j)||_q: the exact distance to misclassification."""
    c = model.head.weight.detach().double().numpy()
    w = model.encoder[0].weight.detach().double().numpy()
    std = float(model.normalize.std)
    with torch.no_grad():
        logits = model(x).double().numpy()
    out = []
    for i, label in enumerate(y.tolist()):
        if logits[i].argmax() != label:
            out.append(0.0)
            continue
        dists = [
            (logits[i, label] - logits[i, j]) / np.linalg.norm((c[label] - c[j]) @ w / std, DUAL[p])
            for j in range(c.shape[0])
            if j != label
        ]
        out.append(min(dists))
    return np.array(out)


@pytest.mark.parametrize("p", ["linf", "l2"])
def test_radius_is_the_exact_boundary_distance_for_an_identity_encoder(p: str) -> None:
    model = _linear_model(torch.eye(6), std=0.3, seed=0)
    x = torch.rand(200, 6)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    y[:20] = (y[:20] + 1) % 4  # some misclassified samples
    radius = certified_radius(model, x, y, p).numpy()
    np.testing.assert_allclose(radius, _exact_linear_distance(model, x, y, p), rtol=1e-5, atol=1e-7)
    assert np.all(radius[:20] == 0.0)
    assert np.all(radius[20:] > 0.0)


@pytest.mark.parametrize("p", ["linf", "l2"])
def test_radius_lower_bounds_the_exact_distance_for_a_linear_encoder(p: str) -> None:
    torch.manual_seed(1)
    model = _linear_model(torch.randn(5, 6), std=0.5, seed=1)
    x = torch.rand(200, 6)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    radius = certified_radius(model, x, y, p).numpy()
    exact = _exact_linear_distance(model, x, y, p)
    assert np.all(radius <= exact * (1 + 1e-6))
    assert np.all(radius > 0)


def test_radius_is_zero_for_misclassified_samples() -> None:
    model = trained_blob_fcn()
    x, _ = blobs(20, seed=1)
    with torch.no_grad():
        wrong = (model(x).argmax(dim=1) + 1) % 3
    for p in ("linf", "l2"):
        assert torch.all(certified_radius(model, x, wrong, p) == 0.0)


def test_certified_accuracy_counts_radii_above_eps() -> None:
    radius = torch.tensor([0.0, 0.1, 0.2, 0.3, math.inf], dtype=torch.float64)
    assert certified_accuracy(radius, 0.15) == pytest.approx(0.6)
    assert certified_accuracy(radius, 0.3) == pytest.approx(0.2)  # strictly greater than eps


def _ball_points(n: int, p: str, g: torch.Generator) -> torch.Tensor:
    """Points in the unit p-ball in 2-D, half of them on its boundary."""
    angles = torch.rand(n, generator=g) * 2 * math.pi
    directions = torch.stack([angles.cos(), angles.sin()], dim=1)
    directions = directions / directions.norm(p=ORDER[p], dim=1, keepdim=True)
    radii = torch.rand(n, 1, generator=g).sqrt()
    radii[: n // 2] = 1.0
    return directions * radii


def _pgd_inside_ball(model, x, y, radius, p, steps=60, restarts=3, seed=0):
    """Maximize the best wrong logit minus the true logit within ||delta||_p <= radius."""
    g = torch.Generator().manual_seed(seed)
    r = radius.float()[:, None]
    worst = torch.full((x.shape[0],), -math.inf)
    for _ in range(restarts):
        delta = (_ball_points(x.shape[0], p, g) * r).requires_grad_(True)
        for _ in range(steps):
            logits = model(x + delta)
            true = logits.gather(1, y[:, None])[:, 0]
            other = logits.masked_fill(F.one_hot(y, 3).bool(), -math.inf).amax(dim=1)
            (grad,) = torch.autograd.grad((other - true).sum(), delta)
            with torch.no_grad():
                if p == "linf":
                    delta += 0.1 * r * grad.sign()
                    delta.copy_(torch.maximum(torch.minimum(delta, r), -r))
                else:
                    delta += 0.1 * r * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
                    scale = (r / delta.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1)
                    delta *= scale
        with torch.no_grad():
            logits = model(x + delta)
            true = logits.gather(1, y[:, None])[:, 0]
            other = logits.masked_fill(F.one_hot(y, 3).bool(), -math.inf).amax(dim=1)
            worst = torch.maximum(worst, other - true)
    return worst


@pytest.mark.parametrize("p", ["linf", "l2"])
def test_no_adversarial_example_inside_the_certified_radius(p: str) -> None:
    model = trained_blob_fcn()
    x, y = blobs(20, seed=2)
    with torch.no_grad():
        correct = model(x).argmax(dim=1) == y
    x, y = x[correct], y[correct]
    radius = certified_radius(model, x, y, p)
    assert torch.all(radius > 0)

    # Dense random search, half on the sphere of radius r_cert.
    g = torch.Generator().manual_seed(3)
    points = _ball_points(2000, p, g)
    with torch.no_grad():
        for i in range(x.shape[0]):
            preds = model(x[i] + points * float(radius[i])).argmax(dim=1)
            assert torch.all(preds == y[i]), f"sample {i} fooled inside r_cert"
    # Gradient search: the best wrong logit never overtakes the true one.
    assert torch.all(_pgd_inside_ball(model, x, y, radius, p) < 0)

    # Ray search far outside: every adversarial point found lies at least r_cert away.
    rays = _ball_points(720, p, g)
    rays = rays / rays.norm(p=ORDER[p], dim=1, keepdim=True)
    scales = torch.linspace(0.0, 1.5, 301)
    with torch.no_grad():
        for i in range(x.shape[0]):
            candidates = (rays[:, None, :] * scales[None, :, None]).reshape(-1, 2)
            fooled = model(x[i] + candidates).argmax(dim=1) != y[i]
            if fooled.any():
                r_emp = float(candidates[fooled].norm(p=ORDER[p], dim=1).min())
                assert float(radius[i]) <= r_emp


def _ce(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def _gradient_attacks(model, x, y, p, eps, steps=10):
    """FGSM-like one step and a short PGD; both within ||delta||_p <= eps."""
    out = []
    delta = torch.zeros_like(x)
    for step in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x + delta), y, reduction="sum"), delta)
        with torch.no_grad():
            size = eps if step == 0 else eps / 4
            if p == "linf":
                delta = (delta + size * grad.sign()).clamp(-eps, eps)
            else:
                delta = delta + size * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
                delta = delta * (eps / delta.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(
                    max=1
                )
        if step == 0:
            out.append(delta.detach().clone())
    out.append(delta.detach())
    return out


@pytest.mark.parametrize("p", ["linf", "l2"])
def test_loss_gap_bound_dominates_measured_ce_increase(p: str) -> None:
    model = trained_blob_fcn()
    x, y = blobs(30, seed=4)
    g = torch.Generator().manual_seed(5)
    clean = _ce(model, x, y)
    for eps in (0.01, 0.05, 0.2):
        bound = loss_gap_bound(model, p, eps)
        random = _ball_points(x.shape[0] * 20, p, g).reshape(20, x.shape[0], 2) * eps
        deltas = list(random) + _gradient_attacks(model, x, y, p, eps)
        worst = max(float((_ce(model, x + d, y) - clean).max()) for d in deltas)
        assert worst <= bound
        assert worst > 0  # the attacks do move the loss
        # Estimates sit between: first-order <= alignment-aware <= certificate (THEORY.md).
        first = first_order_gap(model, x, y, p, eps)
        aligned = alignment_estimate_gap(model, x, p, eps)
        assert 0 < first <= aligned * (1 + 1e-9)
        assert aligned <= bound * (1 + 1e-9)
