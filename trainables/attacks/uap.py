"""Universal adversarial perturbations by SGD (SGD-UAP, Shafahi et al. 2020).

One delta shared by every sample maximizes the mean cross-entropy of clamp(x + delta, 0, 1) on the
true labels: projected gradient ascent over shuffled minibatches, `epochs` passes, a sign step
(L-inf) or normalized-gradient step (L2) of eps / 10, then projection onto the eps ball. The delta
returned is the one with the highest mean loss on all of x among the ends of the epochs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.attacks._base import (
    ascent_direction,
    check_batch,
    check_norm,
    check_positive_int,
    eval_mode,
    make_generator,
    predict,
)
from trainables.errors import ConfigError

_STEP_FRACTION = 0.1  # of eps per update: about ten updates cross the ball


def universal_perturbation(model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps: float,
                           epochs: int = 5, seed: int = 0, batch_size: int = 64) -> Tensor:
    """A single perturbation of shape x.shape[1:] with norm <= eps."""
    check_norm(norm)
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    if not (0 <= eps < float("inf")):
        raise ConfigError(f"eps must be finite and >= 0 (pixel units), but got {eps}")
    x, y = check_batch(x, y)
    delta = torch.zeros((1, *x.shape[1:]), dtype=x.dtype, device=x.device)
    if eps == 0 or len(x) == 0:
        return delta[0]
    generator = make_generator(seed, torch.device("cpu"))
    radius = torch.tensor([float(eps)], dtype=x.dtype, device=x.device)
    best, best_loss = delta.clone(), _mean_loss(model, x, y, delta)
    with eval_mode(model):
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator).to(x.device)
            for start in range(0, len(x), batch_size):
                idx = order[start:start + batch_size]
                delta = _ascent_step(model, x[idx], y[idx], delta, radius, norm)
            loss = _mean_loss(model, x, y, delta)
            if loss > best_loss:
                best, best_loss = delta.clone(), loss
    return best[0]


def _ascent_step(model: nn.Module, x: Tensor, y: Tensor, delta: Tensor, radius: Tensor,
                 norm: str) -> Tensor:
    delta = delta.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model((x + delta).clamp(0, 1)), y)
        (grad,) = torch.autograd.grad(loss, delta)
    moved = delta.detach() + _STEP_FRACTION * radius * ascent_direction(grad, norm)
    # Only the ball: the [0,1] box is per sample, applied when delta is added to x.
    return _ball(moved, radius, norm)


def _ball(delta: Tensor, radius: Tensor, norm: str) -> Tensor:
    """Projection of one perturbation onto the eps ball around the origin."""
    if norm == "linf":
        return delta.clamp(-float(radius), float(radius))
    length = delta.flatten().norm()
    return delta * torch.clamp(radius / length.clamp_min(1e-12), max=1.0)


@torch.no_grad()
def _mean_loss(model: nn.Module, x: Tensor, y: Tensor, delta: Tensor) -> float:
    with eval_mode(model):
        return F.cross_entropy(model((x + delta).clamp(0, 1)), y).item()


def fooling_rate(model: nn.Module, x: Tensor, delta: Tensor) -> float:
    """Fraction of samples whose predicted label changes under clamp(x + delta, 0, 1)."""
    if delta.shape != x.shape[1:]:
        raise ConfigError(f"delta must have one sample's shape {tuple(x.shape[1:])}, but got "
                          f"{tuple(delta.shape)}")
    if len(x) == 0:
        return 0.0
    with eval_mode(model):
        clean = predict(model, x)
        moved = predict(model, (x + delta).clamp(0, 1))
    return (clean != moved).float().mean().item()
