"""comp_k of a vector (THEORY.md "Compressibility of a vector")."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trainables.schema import KAPPAS, kept_count


def _tail_energies(theta: torch.Tensor) -> torch.Tensor:
    """tail[k] = sum of squares of all but the k largest-magnitude entries, k = 0..d.

    Summed from the smallest entry up, so tail is exactly non-increasing in k and exactly 0 once
    k reaches the number of nonzeros (no cancellation as in total - cumsum)."""
    squares = theta.detach().reshape(-1).double().square().sort().values  # ascending
    zero = squares.new_zeros(1)
    return torch.cat([squares.cumsum(0).flip(0), zero])


def _comp_from_tail(tail: torch.Tensor, k: int) -> float:
    total = tail[0]
    if total <= 0:
        return 0.0  # zero vector: comp 0 by convention
    return float(1.0 - torch.sqrt(tail[min(k, tail.numel() - 1)] / total))


def comp_k(theta: torch.Tensor, k: int) -> float:
    """1 - ||theta - theta_[k]||_2 / ||theta||_2, in [0, 1]; 0 for the zero vector."""
    if k < 1:
        raise ValueError(f"k must be >= 1, but got {k}")
    return _comp_from_tail(_tail_energies(theta), k)


def comp_at_kappas(theta: torch.Tensor, kappas: Sequence[float] = KAPPAS) -> list[float]:
    """comp_k at k = schema.kept_count(kappa, d) for each kept fraction kappa."""
    tail = _tail_energies(theta)
    d = tail.numel() - 1
    return [_comp_from_tail(tail, kept_count(kappa, d)) for kappa in kappas]
