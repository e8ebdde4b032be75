"""The base every compression knob implements; a knob overrides one or two methods."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from trainables.errors import ConfigError


class Compression:
    """One compression knob. The trial calls, in this order:

    - `penalty(model)` once per training step, on the step's forward graph: the returned scalar
      (already multiplied by `strength`) is added to the loss before backward. 0 by default, and
      0 for proximal knobs, whose penalty is applied by `after_step` instead.
    - `after_step(model, lr)` once per training step, right after `optimizer.step()`, with the
      learning rate of that step: the proximal operator of lr * strength * penalty. No-op unless
      the knob is proximal.
    - `apply_post_hoc(model)` after training, in place, on a deep copy of the trained model that
      is then evaluated (so training never sees it): pruning / truncation. No-op by default.

    All of them act on `model.encoder_layers()` (the head is never compressed).
    """

    kind: ClassVar[str] = ""
    supports_proximal: ClassVar[bool] = False
    post_hoc: ClassVar[bool] = False  # apply_post_hoc edits the evaluated copy

    def __init__(self, *, strength: float = 0.0, proximal: bool = False, keep_frac: float = 1.0):
        if not (isinstance(strength, (int, float)) and math.isfinite(strength) and strength >= 0):
            raise ConfigError(f"strength must be a finite number >= 0, but got {strength!r}")
        if not (isinstance(keep_frac, (int, float)) and 0 < keep_frac <= 1):
            raise ConfigError(f"keep_frac must be in (0, 1], but got {keep_frac!r}")
        if proximal and not self.supports_proximal:
            raise ConfigError(
                f"proximal=True is only available for l1 and group_lasso, but got "
                f"compression {self.kind!r}; set proximal=False"
            )
        self.strength = float(strength)
        self.proximal = bool(proximal)
        self.keep_frac = float(keep_frac)

    def penalty(self, model: nn.Module) -> torch.Tensor:
        return zero_like_params(model)

    def after_step(self, model: nn.Module, lr: float) -> None:
        return None

    def apply_post_hoc(self, model: nn.Module) -> None:
        return None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(strength={self.strength}, proximal={self.proximal}, "
            f"keep_frac={self.keep_frac})"
        )


def zero_like_params(model: nn.Module) -> torch.Tensor:
    param = next(model.parameters(), None)
    if param is None:
        return torch.zeros(())
    return torch.zeros((), dtype=param.dtype, device=param.device)
