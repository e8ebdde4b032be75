"""How much perturbations align with the first layer's most sensitive directions (THEORY.md
"Why compressibility raises sensitivity")."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainables.metrics._modes import check_norm
from trainables.metrics._weights import weight_matrix


def _directions(matrix: torch.Tensor, p: str) -> torch.Tensor:
    """Unit directions in the layer's input space, the most sensitive one first.

    l2: right singular vectors with nonzero singular values (v_1 first). linf: nonzero rows
    w_i / ||w_i||_2, the row of largest L1 norm first."""
    if p == "l2":
        _, sigma, vh = torch.linalg.svd(matrix, full_matrices=False)
        tol = sigma[:1].clamp_min(0) * max(matrix.shape) * torch.finfo(matrix.dtype).eps
        return vh[(sigma > tol) & (sigma > 0)]
    l1 = matrix.abs().sum(dim=1)
    order = torch.argsort(l1, descending=True, stable=True)
    rows = matrix[order][l1[order] > 0]
    return rows / rows.norm(dim=1, keepdim=True)


@torch.no_grad()
def perturbation_alignment(model: nn.Module, delta: torch.Tensor, p: str) -> tuple[float, float]:
    """(align_top, align_rest) for the first encoder layer W.

    The layer sees d = delta / std (the normalization's mean cancels in a difference).
    align_top = mean over samples of |<u_1, d>| / ||d||_2 with u_1 the most sensitive direction for
    norm p; align_rest = the same averaged over the other directions. delta: (N, *input_shape) or
    one perturbation shaped input_shape. (NaN, NaN) for a conv first layer; align_rest is NaN when
    the layer has a single direction; samples with delta = 0 are skipped."""
    check_norm(p)
    _, first = model.encoder_layers()[0]
    if first.weight.dim() != 2:
        return math.nan, math.nan
    if delta.dim() == len(model.input_shape):
        delta = delta.unsqueeze(0)
    scaled = (delta.detach() / model.normalize.std).double().reshape(delta.shape[0], -1)
    norms = scaled.norm(dim=1)
    scaled = scaled[norms > 0] / norms[norms > 0, None]
    if scaled.shape[0] == 0:
        return math.nan, math.nan
    matrix = weight_matrix(first).to(scaled.device)
    directions = _directions(matrix, p)
    if directions.shape[0] == 0:
        return math.nan, math.nan
    cosines = (scaled @ directions.T).abs()  # (N, directions)
    top = float(cosines[:, 0].mean())
    rest = float(cosines[:, 1:].mean()) if directions.shape[0] > 1 else math.nan
    return top, rest


@torch.no_grad()
def data_alignment(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """How the first encoder layer's most sensitive directions sit relative to the data
    (schema.DATA_STATS; THEORY.md "Scale, homogeneity and what is scale-free"). All three are
    scale-free: scaling W cancels.

    With Z the layer's inputs (x normalized, flattened) centred over the samples, i.e. the
    directions the data varies in, and g = ||Z W^T||_F / ||Z||_F the layer's RMS gain on them:
    data_align = ||Z v_1||^2 / ||Z||_F^2, the share of the data's variance along the top right
    singular vector v_1; data_gain_l2 = sigma_1 / g, how much more the worst L2 direction is
    amplified than the data; data_gain_linf = ||W||_inf / (sqrt(d) g), the same for the worst
    L-inf direction (||delta||_inf = 1 has ||delta||_2 <= sqrt(d)). NaN for a conv first layer,
    a zero layer or data without variation."""
    nan = dict.fromkeys(("data_align", "data_gain_l2", "data_gain_linf"), math.nan)
    _, first = model.encoder_layers()[0]
    if first.weight.dim() != 2:
        return nan
    z = model.normalize(x.detach()).double().reshape(x.shape[0], -1)
    z = z - z.mean(dim=0, keepdim=True)
    matrix = weight_matrix(first).double().to(z.device)
    data_energy = float(z.square().sum())
    gain = math.sqrt(float((z @ matrix.T).square().sum()) / data_energy) if data_energy > 0 else 0
    if gain <= 0:
        return nan
    _, sigma, vh = torch.linalg.svd(matrix, full_matrices=False)
    return {
        "data_align": float((z @ vh[0]).square().sum()) / data_energy,
        "data_gain_l2": float(sigma[0]) / gain,
        "data_gain_linf": float(matrix.abs().sum(dim=1).max()) / (math.sqrt(z.shape[1]) * gain),
    }
