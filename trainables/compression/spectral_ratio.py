"""Scale-invariant spectral sparsity: strength * sum over encoder layers of
||sigma||_1 / ||sigma||_2, sigma the singular values of each layer's (effective) matrix.

The spectral twin of row_sparsity: unlike the nuclear norm it cannot be lowered by shrinking all
weights, so it changes the shape of the spectrum at whatever weight scale training settles on
(THEORY.md "Scale, homogeneity and what is scale-free")."""

from __future__ import annotations

import torch
from torch import nn

from trainables.compression._base import Compression, zero_like_params
from trainables.compression._layers import encoder_matrices

# Keeps the ratio finite at an exactly zero layer (||sigma||_2 = ||W||_F = 0).
_EPS = 1e-12


class SpectralRatio(Compression):
    """||sigma||_2 is computed as ||W||_F (equal, and smooth where singular values repeat)."""

    kind = "spectral_ratio"
    raises = "spectral_comp"
    weak = {"strength": 0.01}
    strong = {"strength": 1.0}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.strength == 0:
            return zero_like_params(model)
        total = zero_like_params(model)
        for matrix in encoder_matrices(model):
            nuclear = torch.linalg.svdvals(matrix).sum()
            total = total + nuclear / torch.linalg.matrix_norm(matrix).clamp_min(_EPS)
        return self.strength * total
