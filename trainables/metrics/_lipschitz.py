"""The encoder Lipschitz estimate Lhat_p and the head norm ||C||_{p->p}."""

from __future__ import annotations

from torch import nn

from trainables.metrics._modes import check_norm
from trainables.metrics._operator_norms import op_norm


def lipschitz(model: nn.Module, p: str) -> float:
    """Lhat_p: the model's own upper bound on the Lipschitz constant of model.features from pixel
    space (normalization included), built from op_norm."""
    check_norm(p)
    return float(model.lipschitz_upper(p, op_norm))


def head_norm(model: nn.Module, p: str) -> float:
    """||C||_{p->p} of the linear head (exact)."""
    return op_norm(model.head, p)
