"""The matrix view of an encoder layer's weight (THEORY.md "Notation")."""

from __future__ import annotations

import torch
from torch import nn


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The effective weight as a float64 matrix: (out, in) for linear-like layers and
    K = (C_out, C_in * k_h * k_w) for conv-like layers ("per filter"). Detached."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() not in (2, 4):
        shape = None if not isinstance(weight, torch.Tensor) else tuple(weight.shape)
        raise TypeError(
            f"expected a layer whose .weight is 2-D (linear) or 4-D (conv), but got "
            f"{type(module).__name__} with weight shape {shape}"
        )
    weight = weight.detach().double()
    return weight.reshape(weight.shape[0], -1)


def kernel_area(module: nn.Module) -> int:
    """k_h * k_w for a conv-like layer, 1 for a linear-like layer."""
    weight = module.weight
    return int(weight.shape[2] * weight.shape[3]) if weight.dim() == 4 else 1
