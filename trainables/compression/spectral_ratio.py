"""Scale-invariant spectral sparsity: strength * sum over encoder layers of
||sigma||_1 / ||sigma||_2, sigma the singular values of each layer's (effective) matrix.

The spectral twin of row_sparsity: unlike the nuclear norm it cannot be lowered by shrinking all
weights, so it changes the shape of the spectrum at whatever weight scale training settles on
(THEORY.md "Scale, homogeneity and what is scale-free")."""

from __future__ import annotations

import torch

from trainables.compression.row_sparsity import RatioPenalty


class SpectralRatio(RatioPenalty):
    """||sigma||_2 is computed as ||W||_F (equal, and smooth where singular values repeat)."""

    kind = "spectral_ratio"
    raises = "spectral_comp"
    weak = {"strength": 0.01}
    strong = {"strength": 1.0}

    def l1_l2(self, matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.linalg.svdvals(matrix).sum(), torch.linalg.matrix_norm(matrix)
