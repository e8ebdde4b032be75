"""Reading and editing encoder layers' effective weights, for plain and low-rank layers alike."""

from __future__ import annotations

import torch
from torch import nn

from trainables.models import LowRankConv2d, LowRankLinear

_LOW_RANK = (LowRankLinear, LowRankConv2d)


def encoder_matrices(model: nn.Module) -> list[torch.Tensor]:
    """Each encoder layer's effective weight as a matrix (rows = neurons / filters), with grad."""
    return [as_matrix(layer.weight) for _, layer in model.encoder_layers()]


def as_matrix(weight: torch.Tensor) -> torch.Tensor:
    """(out, in) stays; a conv (C_out, C_in, kh, kw) reads as (C_out, C_in * kh * kw)."""
    return weight.reshape(weight.shape[0], -1)


def row_norms(matrix: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(matrix, dim=1)


def is_low_rank(layer: nn.Module) -> bool:
    return isinstance(layer, _LOW_RANK)


@torch.no_grad()
def zero_rows(layer: nn.Module, drop: torch.Tensor) -> None:
    """Set the effective rows (neurons / filters) where drop is True to exactly zero, and their
    biases where the layer has one (a user's model): a pruned neuron then outputs nothing."""
    if is_low_rank(layer):
        layer.zero_rows_(drop)
    else:
        layer.weight[drop] = 0.0
    if getattr(layer, "bias", None) is not None:
        layer.bias[drop] = 0.0


@torch.no_grad()
def assign_weight(layer: nn.Module, weight: torch.Tensor) -> None:
    if is_low_rank(layer):
        layer.assign_weight(weight)
    else:
        layer.weight.copy_(weight.reshape(layer.weight.shape))


@torch.no_grad()
def scale_weight(layer: nn.Module, factor: float) -> None:
    if is_low_rank(layer):
        layer.scale_(factor)
    else:
        layer.weight.mul_(factor)


def trainable_weights(layer: nn.Module) -> list[nn.Parameter]:
    """The parameters a proximal step edits: the weight, or a low-rank layer's factors (u, v)."""
    return [layer.u, layer.v] if is_low_rank(layer) else [layer.weight]


def row_groups(layer: nn.Module) -> torch.Tensor:
    """The parameter whose rows are the layer's groups (neurons / filters): the weight, or u for a
    low-rank layer (row i of u @ v is u[i] @ v, so a zero row of u is a zero neuron)."""
    return layer.u if is_low_rank(layer) else layer.weight
