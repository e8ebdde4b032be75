"""Universal perturbations: one delta within eps that fools far more samples than noise."""

from __future__ import annotations

import pytest
import torch

from tests.trainables.attacks_models import digits, trained_digits_mlp
from trainables.attacks import fooling_rate, universal_perturbation
from trainables.errors import ConfigError

BUDGETS = {"linf": (0.05, 0.1, 0.2), "l2": (0.5, 1.0, 2.0)}


def _random_like(delta: torch.Tensor, norm: str, eps: float, seed: int) -> torch.Tensor:
    """Noise with exactly the same norm: random signs (L-inf corner) or a random direction."""
    gen = torch.Generator().manual_seed(seed)
    if norm == "linf":
        return (torch.randint(0, 2, delta.shape, generator=gen) * 2 - 1).float() * eps
    noise = torch.randn(delta.shape, generator=gen)
    return noise / noise.norm() * eps


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_uap_beats_noise_of_the_same_norm_and_grows_with_eps(norm):
    torch.set_num_threads(1)
    model = trained_digits_mlp()
    x, y = digits()[2][:300], digits()[3][:300]
    rates = []
    for eps in BUDGETS[norm]:
        delta = universal_perturbation(model, x, y, norm=norm, eps=eps, epochs=5, seed=0)
        assert delta.shape == x.shape[1:]
        size = delta.abs().max() if norm == "linf" else delta.norm()
        assert size.item() <= eps + 1e-6
        rate = fooling_rate(model, x, delta)
        noise = max(fooling_rate(model, x, _random_like(delta, norm, eps, s)) for s in range(3))
        assert rate > noise + 0.01, (eps, rate, noise)
        rates.append(rate)
    assert rates == sorted(rates) and rates[-1] > rates[0]


def test_fooling_rate_counts_changed_predictions():
    model = trained_digits_mlp()
    x = digits()[2][:200]
    assert fooling_rate(model, x, torch.zeros(x.shape[1:])) == 0.0
    # Pushing every pixel to 1 (clamped) changes the prediction exactly where argmax moves.
    delta = torch.ones(x.shape[1:])
    with torch.no_grad():
        changed = model(x).argmax(1) != model(torch.ones_like(x)).argmax(1)
    assert fooling_rate(model, x, delta) == pytest.approx(changed.float().mean().item())


def test_uap_is_seeded_and_eps_zero_is_zero():
    model = trained_digits_mlp()
    x, y = digits()[2][:100], digits()[3][:100]
    a = universal_perturbation(model, x, y, norm="l2", eps=1.0, epochs=2, seed=3)
    b = universal_perturbation(model, x, y, norm="l2", eps=1.0, epochs=2, seed=3)
    assert torch.equal(a, b)
    assert not universal_perturbation(model, x, y, norm="l2", eps=0.0).any()
    with pytest.raises(ConfigError, match="one sample's shape"):
        fooling_rate(model, x, a.flatten())
