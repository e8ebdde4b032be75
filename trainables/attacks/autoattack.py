"""AutoAttack (Croce & Hein 2020) through pyautoattack.AutoAttack.

Versions:
- "standard": the community's full ensemble, APGD-CE, APGD-T (targeted DLR), FAB-T, Square, with
  the library's fixed budgets (`steps` and `restarts` are ignored: fixed budgets are the point).
- "fast": APGD-CE then APGD-T with `steps` iterations each, a cheaper gradient-only ensemble.

Adaptations to small label sets (the library assumes 10 classes): targeted attacks use at most
classes - 1 target classes, and APGD-T is dropped below 4 classes (its targeted DLR loss uses the
fourth-largest logit). Square only takes images (N, C, H, W): other inputs are shown to the library
as one-channel square images, zero-padded, through a model wrapper that crops the padding off (the
padding has no effect on the logits, so it only costs Square some L2 budget). The library seeds torch's global RNG per attack, so it runs inside a forked
RNG. eps must be one number here (FAB and Square take no per-sample budgets).
"""

from __future__ import annotations

import math

import torch
from pyautoattack import AutoAttack
from torch import Tensor, nn

from trainables.attacks._base import Attack, check_positive_int, forked_rng, num_classes
from trainables.errors import ConfigError

VERSIONS = ("standard", "fast")
_LIBRARY_NORM = {"linf": "Linf", "l2": "L2"}
_BATCH_SIZE = 500


class AutoAttackEnsemble(Attack):
    def __init__(self, model: nn.Module, *, norm: str, version: str = "standard",
                 steps: int = 100, seed: int | None = 0) -> None:
        super().__init__(model, norm=norm, seed=seed)
        if version not in VERSIONS:
            raise ConfigError(f"AutoAttack version must be one of {list(VERSIONS)}, but got "
                              f"{version!r}")
        check_positive_int("steps", steps)
        self.version, self.steps = version, steps

    def _perturb(self, x: Tensor, y: Tensor, eps: Tensor) -> Tensor:
        if not bool((eps == eps[0]).all()):
            raise ConfigError("AutoAttack takes one eps for the whole batch, but got per-sample "
                              "budgets; use attack 'pgd' or 'apgd-ce' for those")
        classes = num_classes(self.model, x)
        seed = self.child_seed()
        model, x_img = (self.model, x) if x.ndim == 4 else _as_images(self.model, x)
        ensemble = self._build(model, float(eps[0]), classes, seed, x.device)
        with forked_rng(x.device, seed):
            x_adv, _ = ensemble.run_standard_evaluation(x_img, y, batch_size=_BATCH_SIZE)
        return x_adv.flatten(1)[:, : x[0].numel()].view(x.shape)

    def _build(self, model: nn.Module, eps: float, classes: int, seed: int,
               device: torch.device) -> AutoAttack:
        norm = _LIBRARY_NORM[self.norm]
        targets = max(1, min(9, classes - 1))
        if self.version == "standard":
            ensemble = AutoAttack(model, norm=norm, eps=eps, seed=seed, device=device,
                                  version="standard")
        else:
            ensemble = AutoAttack(model, norm=norm, eps=eps, seed=seed, device=device,
                                  version="custom", attacks=["apgd-ce", "apgd-t"])
            for apgd in (ensemble.apgd, ensemble.apgd_targeted):
                apgd.n_iter = apgd.n_iter_orig = self.steps
                apgd.n_iter_2 = max(int(0.22 * self.steps), 1)
                apgd.n_iter_min = max(int(0.06 * self.steps), 1)
                apgd.size_decr = max(int(0.03 * self.steps), 1)
            ensemble.apgd.n_restarts = 1
        ensemble.apgd_targeted.n_target_classes = targets
        ensemble.fab.n_target_classes = targets
        if classes < 4:
            ensemble.attacks_to_run = [a for a in ensemble.attacks_to_run if a != "apgd-t"]
        ensemble.verbose = False
        return ensemble


class _CropToShape(nn.Module):
    """Takes (N, 1, s, s) images, keeps the first prod(shape) pixels, calls the model."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.model, self.shape = model, shape

    def forward(self, x_img: Tensor) -> Tensor:
        return self.model(x_img.flatten(1)[:, : math.prod(self.shape)].view(-1, *self.shape))


def _as_images(model: nn.Module, x: Tensor) -> tuple[nn.Module, Tensor]:
    dim = x[0].numel()
    side = math.isqrt(dim - 1) + 1
    x_img = torch.zeros(len(x), side * side, dtype=x.dtype, device=x.device)
    x_img[:, :dim] = x.flatten(1)
    return _CropToShape(model, tuple(x.shape[1:])), x_img.view(len(x), 1, side, side)


def autoattack(model: nn.Module, x: Tensor, y: Tensor, *, norm: str, eps: float,
               version: str = "standard", steps: int = 100, seed: int | None = 0) -> Tensor:
    """AutoAttack adversarial examples ("standard" full ensemble or the cheaper "fast" one)."""
    attack = AutoAttackEnsemble(model, norm=norm, version=version, steps=steps, seed=seed)
    return attack(x, y, eps)
