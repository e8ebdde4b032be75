"""Projected gradient descent (Madry et al. 2018) on cross-entropy, L-inf and L2.

L-inf steps along sign(grad), L2 along grad / ||grad||_2; both project onto the eps ball and the
[0,1] box after every step. Default step size 2.5 * eps / steps, so a run can cross the ball and
back. Per sample, the returned point is the best iterate of all restarts: a misclassified iterate
beats a correctly classified one, and among equals the higher loss wins. Restarts after the first
only attack samples without an adversarial example yet.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainables.attacks._base import (
    Attack,
    ascent_direction,
    batch_view,
    check_positive_int,
    loss_and_grad,
    project,
    random_start,
)
from trainables.errors import ConfigError


class PGD(Attack):
    def __init__(self, model: nn.Module, *, norm: str, steps: int = 20,
                 step_size: float | None = None, restarts: int = 1, random_start: bool = True,
                 seed: int | None = None) -> None:
        super().__init__(model, norm=norm, seed=seed)
        check_positive_int("steps", steps)
        check_positive_int("restarts", restarts)
        if step_size is not None and not step_size > 0:
            raise ConfigError(f"step_size must be > 0 (pixel units) or None, but got {step_size}")
        self.steps = steps
        self.step_size = step_size
        self.restarts = restarts
        self.random_start = random_start

    def _perturb(self, x: Tensor, y: Tensor, eps: Tensor) -> Tensor:
        step = (torch.full_like(eps, self.step_size) if self.step_size is not None
                else 2.5 * eps / self.steps)
        best = x.clone()
        best_loss = torch.full_like(eps, -float("inf"))
        best_adv = torch.zeros_like(eps, dtype=torch.bool)
        for _ in range(self.restarts):
            todo = (~best_adv).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            x_r, loss_r, adv_r = self._single_run(x[todo], y[todo], eps[todo], step[todo])
            better = _beats(adv_r, loss_r, best_adv[todo], best_loss[todo])
            idx = todo[better]
            best[idx], best_loss[idx], best_adv[idx] = x_r[better], loss_r[better], adv_r[better]
        return best

    def _single_run(self, x: Tensor, y: Tensor, eps: Tensor, step: Tensor
                    ) -> tuple[Tensor, Tensor, Tensor]:
        """One PGD run from a (random) start; returns its best iterate, loss, misclassified."""
        x_adv = random_start(x, eps, self.norm, self.generator) if self.random_start else x
        best, best_loss = x_adv.clone(), torch.full_like(eps, -float("inf"))
        best_adv = torch.zeros_like(eps, dtype=torch.bool)
        # steps gradient steps; the loss at iterate t is computed with the gradient for step t+1,
        # so the last iterate costs one extra forward/backward (cheap, and keeps the code simple).
        for t in range(self.steps + 1):
            loss, grad, logits = loss_and_grad(self.model, x_adv, y)
            adv = logits.argmax(1) != y
            better = _beats(adv, loss, best_adv, best_loss)
            best[better], best_loss[better], best_adv[better] = (
                x_adv[better], loss[better], adv[better])
            if t == self.steps:
                break
            moved = x_adv + batch_view(step, x) * ascent_direction(grad, self.norm)
            x_adv = project(moved, x, eps, self.norm)
        return best, best_loss, best_adv


def _beats(adv: Tensor, loss: Tensor, best_adv: Tensor, best_loss: Tensor) -> Tensor:
    """Lexicographic (misclassified, loss) comparison, per sample."""
    return (adv & ~best_adv) | ((adv == best_adv) & (loss > best_loss))


def pgd(model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps: float | Tensor,
        steps: int = 20, step_size: float | None = None, restarts: int = 1,
        random_start: bool = True, seed: int | None = None) -> Tensor:
    """PGD adversarial examples for (x, y); eps is a number or a per-sample tensor (N,).

    eps = 0 returns a copy of x. seed None draws the seed from torch's global RNG.
    """
    attack = PGD(model, norm=norm, steps=steps, step_size=step_size, restarts=restarts,
                 random_start=random_start, seed=seed)
    return attack(x, y, eps)
