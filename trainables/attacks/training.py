"""Adversarial training (Madry et al. 2018): replace part of each batch by PGD examples."""

from __future__ import annotations

import math

from torch import Tensor, nn

from trainables.attacks._base import check_batch, check_norm, check_positive_int
from trainables.attacks.pgd import pgd
from trainables.errors import ConfigError


def adversarial_training_batch(model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps: float,
                               steps: int, frac: float, seed: int | None = None) -> Tensor:
    """A new tensor: x with its first round(frac * N) samples replaced by PGD examples (random
    start, default step size). The model's train/eval mode is restored afterwards."""
    check_norm(norm)
    check_positive_int("steps", steps)
    if not (0 < frac <= 1):
        raise ConfigError(f"frac must be in (0, 1], but got {frac}")
    if not (0 <= eps < math.inf):
        raise ConfigError(f"eps must be finite and >= 0 (pixel units), but got {eps}")
    x_checked, y = check_batch(x, y)
    out = x.detach().clone()
    n_adv = round(frac * len(x))
    if n_adv == 0 or eps == 0:
        return out
    out[:n_adv] = pgd(model, x_checked[:n_adv], y[:n_adv], norm=norm, eps=eps, steps=steps,
                      random_start=True, seed=seed)
    return out
