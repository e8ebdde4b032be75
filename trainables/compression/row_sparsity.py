"""Scale-invariant neuron sparsity: strength * sum over layers of ||r||_1 / ||r||_2, r the vector of
row L2 norms. Unlike group lasso it cannot be lowered by shrinking all weights."""

from __future__ import annotations

import torch
from torch import nn

from trainables.compression._base import Compression, zero_like_params
from trainables.compression._layers import encoder_matrices

# Keeps the norms differentiable at an exactly zero row / layer.
_EPS = 1e-12


class RowSparsity(Compression):
    kind = "row_sparsity"
    raises = "neuron_comp_l2"
    weak = {"strength": 0.01}
    strong = {"strength": 1.0}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.strength == 0:
            return zero_like_params(model)
        total = zero_like_params(model)
        for matrix in encoder_matrices(model):
            r = (matrix.pow(2).sum(dim=1) + _EPS).sqrt()
            total = total + r.sum() / torch.linalg.vector_norm(r).clamp_min(_EPS)
        return self.strength * total

