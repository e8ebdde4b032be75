"""Input normalization inside the model, so attacks and budgets live in pixel space."""

from __future__ import annotations

import torch
from torch import nn

from trainables.errors import ConfigError


class Normalize(nn.Module):
    """(x - mean) / std with buffers shaped (C, 1, 1) for images or (1,) for vector data."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, input_shape: tuple[int, ...]):
        super().__init__()
        shape = (-1, 1, 1) if len(input_shape) == 3 else (-1,)
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(shape).clone()
        std = torch.as_tensor(std, dtype=torch.float32).reshape(shape).clone()
        if not bool((std > 0).all()):
            raise ConfigError(
                f"std must be > 0 everywhere, but got {std.flatten().tolist()}; "
                "drop constant inputs or pass a positive std"
            )
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def operator_norm(self) -> float:
        """||N||_{p->p} for p in {inf, 2}: N is diagonal, so its norm is 1 / min(std)."""
        return float(1.0 / self.std.min())
