"""Scale-invariant neuron sparsity: strength * sum over layers of ||r||_1 / ||r||_2, r the vector of
row L2 norms. Unlike group lasso it cannot be lowered by shrinking all weights."""

from __future__ import annotations

import torch
from torch import nn

from trainables.compression._base import Compression, zero_like_params
from trainables.compression._layers import encoder_matrices

# Keeps the norms differentiable at an exactly zero row / layer.
_EPS = 1e-12


class RatioPenalty(Compression):
    """strength * sum over encoder layers of ||v||_1 / ||v||_2 of a vector v(W) that scales with W:
    invariant to the weights' scale, so it cannot be lowered by shrinking them (unlike group lasso
    or the nuclear norm). Subclasses give `l1_l2(matrix) -> (||v||_1, ||v||_2)`."""

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.strength == 0:
            return zero_like_params(model)
        total = zero_like_params(model)
        for matrix in encoder_matrices(model):
            l1, l2 = self.l1_l2(matrix)
            total = total + l1 / l2.clamp_min(_EPS)
        return self.strength * total

    def l1_l2(self, matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class RowSparsity(RatioPenalty):
    kind = "row_sparsity"
    raises = "neuron_comp_l2"
    weak = {"strength": 0.01}
    strong = {"strength": 1.0}

    def l1_l2(self, matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = (matrix.pow(2).sum(dim=1) + _EPS).sqrt()  # row L2 norms, differentiable at 0
        return r.sum(), torch.linalg.vector_norm(r)
