"""Neuron / filter sparsity: strength * sum over encoder layers of the rows' L2 norms."""

from __future__ import annotations

import torch
from torch import nn

from trainables.compression._base import Compression, zero_like_params
from trainables.compression._layers import as_matrix, encoder_matrices, row_groups, row_norms


class GroupLasso(Compression):
    """Groups are rows of (out, in) weights and filters of conv weights; the head is excluded.
    Proximal form: group soft-thresholding w_i <- w_i * max(0, 1 - lr * strength / ||w_i||),
    which leaves exact zero rows. For a low-rank layer the groups are the rows of u."""

    kind = "group_lasso"
    supports_proximal = True
    raises = "neuron_comp_l2"
    weak = {"strength": 0.01}
    strong = {"strength": 0.2}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.proximal or self.strength == 0:
            return zero_like_params(model)
        return self.strength * sum(row_norms(m).sum() for m in encoder_matrices(model))

    @torch.no_grad()
    def after_step(self, model: nn.Module, lr: float) -> None:
        if not self.proximal or self.strength == 0:
            return
        for _, layer in model.encoder_layers():
            groups = row_groups(layer)
            groups.copy_(group_soft_threshold(groups, lr * self.strength))


def group_soft_threshold(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """Prox of threshold * sum_i ||w_i||_2 over the rows of weight (any trailing shape)."""
    matrix = as_matrix(weight)
    norms = row_norms(matrix)
    shrink = torch.clamp(1.0 - threshold / norms.clamp_min(torch.finfo(norms.dtype).tiny), min=0.0)
    return (matrix * shrink[:, None]).reshape(weight.shape)
