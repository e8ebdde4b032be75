"""Post-hoc spectral truncation: per encoder layer keep the top keep_frac singular values."""

from __future__ import annotations

import torch
from torch import nn

from trainables.compression._base import Compression
from trainables.compression._layers import as_matrix, assign_weight
from trainables.schema import kept_count


class SvdTruncate(Compression):
    """Replaces each layer's matrix by its best rank-k approximation (Eckart-Young), k =
    max(1, ceil(keep_frac * min(rows, cols))); a conv's matrix is (C_out, C_in * kh * kw)."""

    kind = "svd_truncate"
    post_hoc = True

    @torch.no_grad()
    def apply_post_hoc(self, model: nn.Module) -> None:
        for _, layer in model.encoder_layers():
            weight = layer.weight
            matrix = as_matrix(weight)
            truncated = best_rank_k(matrix, kept_count(self.keep_frac, min(matrix.shape)))
            assign_weight(layer, truncated.reshape(weight.shape).to(weight.dtype))


def best_rank_k(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """U_k S_k V_k^T, computed in float64."""
    left, sigma, right_t = torch.linalg.svd(matrix.detach().double(), full_matrices=False)
    return (left[:, :k] * sigma[:k]) @ right_t[:k]
