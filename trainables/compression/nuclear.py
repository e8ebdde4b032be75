"""Spectral sparsity: strength * sum of singular values of each encoder layer's matrix (convs read
as (C_out, C_in * kh * kw))."""

from __future__ import annotations

import torch
from torch import nn

from trainables.compression._base import Compression, zero_like_params
from trainables.compression._layers import encoder_matrices


class NuclearNorm(Compression):
    kind = "nuclear"
    raises = "spectral_comp"
    weak = {"strength": 1e-3}
    strong = {"strength": 0.03}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.strength == 0:
            return zero_like_params(model)
        return self.strength * sum(torch.linalg.svdvals(m).sum() for m in encoder_matrices(model))
