"""Certificates from Lhat_p: per-sample certified radius and the loss-gap bound (THEORY.md
"Network bound")."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainables.metrics._lipschitz import head_norm, lipschitz
from trainables.metrics._modes import check_norm, logits_of
from trainables.schema import DUAL_NORM

# Sup over softmax - onehot of its dual norm: ||.||_1 <= 2, ||.||_2 <= sqrt(2).
CE_GRADIENT_BOUND = {"linf": 2.0, "l2": math.sqrt(2.0)}


@torch.no_grad()
def certified_radius(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    p: str,
    *,
    logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """r_cert_p(x) = min_{j != y} (f_y - f_j) / (||c_y - c_j||_q * Lhat_p); 0 when misclassified.

    logits: model(x) in eval mode when the caller already has them (saves a forward pass).
    Returns a float64 CPU tensor (N,). Classes whose head rows equal c_y can never overtake y
    (their margin is a constant), so they give an infinite radius when that margin is positive."""
    check_norm(p)
    logits = (logits_of(model, x) if logits is None else logits).double().cpu()
    y = y.cpu()
    rows = model.head.weight.detach().double().cpu()
    pair_norms = torch.cdist(rows, rows, p=DUAL_NORM[p])  # (K, K): ||c_i - c_j||_q
    lip = lipschitz(model, p)

    margins = logits.gather(1, y[:, None]) - logits  # (N, K): f_y - f_j
    scale = pair_norms[y] * lip  # (N, K)
    ratios = torch.where(
        scale > 0,
        margins / scale.clamp_min(torch.finfo(torch.float64).tiny),
        torch.where(margins > 0, math.inf, 0.0),
    )
    ratios.scatter_(1, y[:, None], math.inf)  # j = y is not a competitor
    radius = ratios.min(dim=1).values.clamp_min(0.0)
    misclassified = logits.argmax(dim=1) != y
    return torch.where(misclassified, 0.0, radius)


def certified_accuracy(radius: torch.Tensor, eps: float) -> float:
    """Fraction of samples with r_cert > eps: a lower bound on robust accuracy at eps."""
    return float((radius > eps).double().mean())


def loss_gap_bound(model: nn.Module, p: str, eps: float) -> float:
    """G_p * ||C||_{p->p} * Lhat_p * eps: bounds CE(f(x+delta), y) - CE(f(x), y), ||delta||_p <= eps."""
    check_norm(p)
    return CE_GRADIENT_BOUND[p] * head_norm(model, p) * lipschitz(model, p) * eps
