"""Per-layer norms and compressibility: one schema.LAYERS_COLUMNS row per encoder layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from trainables.metrics._compressibility import comp_at_kappas
from trainables.metrics._operator_norms import max_row_l1
from trainables.metrics._weights import kernel_area, weight_matrix
from trainables.schema import (
    HEADLINE_KAPPA,
    HEADLINE_PREFIXES,
    KAPPAS,
    SCALE_FREE_STATS,
    comp_columns,
    kappa_tag,
    kept_count,
)

# Singular values below sigma_1 * max(shape) * this are numerically zero (weights are float32):
# a rank-r layer's sigma_{r+1..} come out near 1e-7 sigma_1, not 0.
_RANK_TOL = float(torch.finfo(torch.float32).eps)


def spectral_entropy(singular_values: torch.Tensor) -> float:
    """H(p) with p_i = sigma_i / sum sigma (0 log 0 = 0); 0 for the zero matrix."""
    total = singular_values.sum()
    if total <= 0:
        return 0.0
    probs = singular_values[singular_values > 0] / total
    return float(-(probs * probs.log()).sum())


def stable_rank(matrix: torch.Tensor, sigma_1: float) -> float:
    """||W||_F^2 / ||W||_2^2; 0 for the zero matrix."""
    return float(matrix.square().sum()) / sigma_1**2 if sigma_1 > 0 else 0.0


def l1_over_l2(values: torch.Tensor) -> float:
    """||v||_1 / ||v||_2, in [1, sqrt(nonzeros)]: a continuous count of the entries that carry
    the energy. 0 for the zero vector (the convention comp_k uses)."""
    l2 = float(torch.linalg.vector_norm(values))
    return float(values.abs().sum()) / l2 if l2 > 0 else 0.0


def spectral_spread(sigma: torch.Tensor, shape: tuple[int, int]) -> list[float]:
    """sigma_1 / sigma_k at k = kept_count(kappa, len(sigma)) for each kappa: inf when sigma_k is
    numerically zero (the layer's rank is below k), 0 for the zero matrix."""
    if not sigma.numel() or float(sigma[0]) <= 0:
        return [0.0] * len(KAPPAS)
    tol = float(sigma[0]) * max(shape) * _RANK_TOL
    out = []
    for kappa in KAPPAS:
        sigma_k = float(sigma[kept_count(kappa, sigma.numel()) - 1])
        out.append(float(sigma[0]) / sigma_k if sigma_k > tol else math.inf)
    return out


def zero_row_fraction(matrix: torch.Tensor) -> float:
    return float((matrix == 0).all(dim=1).double().mean())


def _named(prefix: str, values: Sequence[float]) -> dict[str, float]:
    return dict(zip(comp_columns(prefix), values, strict=True))


def weight_layer_metrics(name: str, index: int, module: nn.Module) -> dict[str, Any]:
    """Every per-layer quantity of THEORY.md for one linear- or conv-like layer."""
    matrix = weight_matrix(module)
    sigma = torch.linalg.svdvals(matrix)  # descending
    sigma_1 = float(sigma[0]) if sigma.numel() else 0.0
    entropy = spectral_entropy(sigma)
    is_zero = not bool((matrix != 0).any())
    fro = float(matrix.norm())
    row_l1 = matrix.abs().sum(dim=1)
    inf_norm = max_row_l1(matrix)
    return {
        "layer": name,
        "layer_index": index,
        "fro_norm": fro,
        "spec_norm": sigma_1,
        # Same formula as op_norm(module, "l2"); the singular values are already at hand.
        "op_norm_l2": math.sqrt(kernel_area(module)) * sigma_1,
        "inf_norm": inf_norm,
        **_named("neuron_comp_l1", comp_at_kappas(row_l1)),
        **_named("neuron_comp_l2", comp_at_kappas(matrix.norm(dim=1))),
        **_named("spectral_comp", comp_at_kappas(sigma)),
        "entropy": entropy,
        "effective_rank": 0.0 if is_zero else math.exp(entropy),
        "stable_rank": stable_rank(matrix, sigma_1),
        "zero_row_frac": zero_row_fraction(matrix),
        "spectral_l1l2": l1_over_l2(sigma),
        "neuron_l1l2_l1": l1_over_l2(row_l1),
        "neuron_l1l2_l2": l1_over_l2(matrix.norm(dim=1)),
        "spec_fro": sigma_1 / fro if fro > 0 else 0.0,
        "inf_fro": inf_norm / fro if fro > 0 else 0.0,
        **_named("spectral_spread", spectral_spread(sigma, tuple(matrix.shape))),
    }


@torch.no_grad()
def layer_metrics(model: nn.Module) -> list[dict[str, Any]]:
    """One dict per encoder layer with schema.LAYERS_COLUMNS keys except trial_id and iteration."""
    return [
        weight_layer_metrics(name, index, module)
        for index, (name, module) in enumerate(model.encoder_layers())
    ]


def network_summary(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Means over encoder layers at schema.HEADLINE_KAPPA, and of schema.SCALE_FREE_STATS (NaN
    when there are no layers)."""
    tag = kappa_tag(HEADLINE_KAPPA)

    def mean(column: str) -> float:
        return sum(row[column] for row in rows) / len(rows) if rows else math.nan

    return {
        **{name: mean(f"{prefix}_{tag}") for name, prefix in HEADLINE_PREFIXES.items()},
        **{key: mean(column) for key, column in SCALE_FREE_STATS.items()},
    }
