"""APGD-CE and APGD-DLR (Croce & Hein 2020) through pyautoattack's APGDAttack.

What we rely on in pyautoattack.autopgd_base.APGDAttack (checked against version 0.2.0):
- `device=None` means "x's device"; norms are spelled 'Linf' / 'L2'.
- `perturb` seeds torch's GLOBAL RNG with `self.seed`: we run it inside a forked RNG so the
  caller's random state is untouched, and draw that seed from our own generator.
- it only attacks samples it sees as correctly classified and returns the first adversarial
  iterate found (x itself where none is found). eps may be a (N, 1, ..., 1) tensor, but its own
  restart loop subsets the batch without subsetting eps, so we run restarts ourselves, one
  `n_restarts=1` call per restart on the samples that are still robust.
- the DLR loss divides by the gap between the largest and third-largest logit: it needs >= 3
  classes.
"""

from __future__ import annotations

import torch
from pyautoattack.autopgd_base import APGDAttack
from torch import Tensor, nn

from trainables.attacks._base import (
    Attack,
    batch_view,
    check_positive_int,
    forked_rng,
    num_classes,
    predict,
)
from trainables.errors import ConfigError

_LIBRARY_NORM = {"linf": "Linf", "l2": "L2"}
LOSSES = ("ce", "dlr")


class APGD(Attack):
    def __init__(self, model: nn.Module, *, norm: str, loss: str = "ce", steps: int = 100,
                 restarts: int = 1, seed: int | None = None) -> None:
        super().__init__(model, norm=norm, seed=seed)
        if loss not in LOSSES:
            raise ConfigError(f"APGD loss must be one of {list(LOSSES)}, but got {loss!r}")
        check_positive_int("steps", steps)
        check_positive_int("restarts", restarts)
        self.loss, self.steps, self.restarts = loss, steps, restarts

    def _perturb(self, x: Tensor, y: Tensor, eps: Tensor) -> Tensor:
        if self.loss == "dlr" and (k := num_classes(self.model, x)) < 3:
            raise ConfigError(
                f"APGD-DLR needs >= 3 classes (its loss uses the third-largest logit), but the "
                f"model has {k}; use attack 'apgd-ce' or 'pgd'"
            )
        x_adv = x.clone()
        robust = predict(self.model, x) == y
        for _ in range(self.restarts):
            todo = robust.nonzero().squeeze(1)
            if len(todo) == 0:
                break
            seed = self.child_seed()
            attack = APGDAttack(self.model, n_iter=self.steps, norm=_LIBRARY_NORM[self.norm],
                                n_restarts=1, eps=batch_view(eps[todo], x), seed=seed,
                                loss=self.loss, device=x.device)
            with forked_rng(x.device, seed), torch.no_grad():
                found = attack.perturb(x[todo], y[todo])
            fooled = predict(self.model, found) != y[todo]
            x_adv[todo[fooled]] = found[fooled]
            robust[todo[fooled]] = False
        return x_adv


def apgd(model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps: float | Tensor,
         loss: str = "ce", steps: int = 100, restarts: int = 1, seed: int | None = 0) -> Tensor:
    """APGD adversarial examples on the CE or DLR loss; eps a number or a per-sample tensor."""
    return APGD(model, norm=norm, loss=loss, steps=steps, restarts=restarts, seed=seed)(x, y, eps)
