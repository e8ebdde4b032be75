"""The paper's weight-scaling control: multiply every encoder layer's weight by a factor."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainables.compression._layers import scale_weight
from trainables.errors import ConfigError


@torch.no_grad()
def scale_encoder(model: nn.Module, factor: float) -> None:
    """In place; for a low-rank layer u is scaled, so u @ v scales by exactly factor."""
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
        raise ConfigError(f"factor must be a finite number > 0, but got {factor!r}")
    for _, layer in model.encoder_layers():
        scale_weight(layer, float(factor))
