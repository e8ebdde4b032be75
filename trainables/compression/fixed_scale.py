"""The fixed-scale control: hold each encoder layer at a target Frobenius norm during training.

Any knob can then change only the *shape* of a layer's weights (its spectrum, its row norms), not
their scale: the control that separates "more compressible" from "smaller weights" (THEORY.md
"Scale, homogeneity and what is scale-free"). The trial calls `project_fro_` after every optimizer
step (and after the knob's own proximal step), with the targets read once at initialization.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from trainables.compression._layers import is_low_rank
from trainables.errors import ConfigError


@torch.no_grad()
def encoder_fro_norms(model: nn.Module) -> list[float]:
    """||W_l||_F of each encoder layer's effective weight, in encoder order."""
    return [float(torch.linalg.vector_norm(layer.weight.detach().double()))
            for _, layer in model.encoder_layers()]


def fro_targets(model: nn.Module, target: float | None) -> list[float]:
    """One target per encoder layer: `target` for all, or (None) each layer's current norm."""
    if target is None:
        return encoder_fro_norms(model)
    if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 0):
        raise ConfigError(f"target_fro must be a finite number > 0, but got {target!r}")
    return [float(target)] * len(model.encoder_layers())


@torch.no_grad()
def project_fro_(model: nn.Module, targets: Sequence[float]) -> None:
    """Rescale each encoder layer in place so that ||W_l||_F = targets[l].

    A low-rank layer u @ v scales both factors by sqrt(factor): the product scales by factor and
    the factors stay as balanced as they were (scaling u alone, step after step, would unbalance
    them, which slows SGD on the smaller factor). A zero layer stays zero: no direction to restore.
    """
    layers = model.encoder_layers()
    if len(targets) != len(layers):
        raise ConfigError(
            f"need one Frobenius target per encoder layer ({len(layers)}), but got {len(targets)}"
        )
    for (_, layer), target in zip(layers, targets, strict=True):
        norm = float(torch.linalg.vector_norm(layer.weight.detach().double()))
        if norm == 0.0:
            continue
        factor = target / norm
        if is_low_rank(layer):
            root = math.sqrt(factor)
            layer.u.mul_(root)
            layer.v.mul_(root)
        else:
            layer.weight.mul_(factor)
