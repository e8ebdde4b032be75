"""Rank-r factorized layers. `.weight` is the effective weight, computed from the factors.

Compression edits these layers through `assign_weight`, `zero_rows_` and `scale_`, which keep the
factorized form (an in-place edit of the computed `.weight` would be lost).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _he_factors(u: torch.Tensor, v: torch.Tensor, fan_in: int) -> None:
    """Entries of u @ v get variance 2 / fan_in (He init, as for the plain layers).

    Both factors get the same scale: with unbalanced factors the larger one multiplies the
    other's gradient, and SGD at an ordinary learning rate diverges at small ranks.
    """
    rank = u.shape[1]
    scale = (2.0 / (fan_in * rank)) ** 0.25
    with torch.no_grad():
        v.normal_(0.0, scale)
        u.normal_(0.0, scale)


def _balanced_factors(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """u (out x rank), v (rank x in) with u @ v the best rank-`rank` approximation of matrix."""
    left, sigma, right_t = torch.linalg.svd(matrix.detach().double(), full_matrices=False)
    k = min(rank, sigma.numel())
    root = sigma[:k].sqrt()
    u = left.new_zeros(matrix.shape[0], rank)
    v = left.new_zeros(rank, matrix.shape[1])
    u[:, :k] = left[:, :k] * root
    v[:k] = root[:, None] * right_t[:k]
    return u, v


class LowRankLinear(nn.Module):
    """x -> x @ (u @ v).T without bias; u is (out x rank), v is (rank x in)."""

    def __init__(self, in_features: int, out_features: int, rank: int):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.u = nn.Parameter(torch.empty(out_features, rank))
        self.v = nn.Parameter(torch.empty(rank, in_features))
        _he_factors(self.u, self.v, in_features)

    @property
    def weight(self) -> torch.Tensor:
        return self.u @ self.v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.v.t()) @ self.u.t()

    @torch.no_grad()
    def assign_weight(self, weight: torch.Tensor) -> None:
        """Set the factors to the best rank-`rank` approximation of weight (exact if rank allows)."""
        u, v = _balanced_factors(weight, self.rank)
        self.u.copy_(u)
        self.v.copy_(v)

    @torch.no_grad()
    def zero_rows_(self, drop: torch.Tensor) -> None:
        """Zero the effective rows where drop is True (exactly: row i of u @ v is u[i] @ v)."""
        self.u[drop] = 0.0

    @torch.no_grad()
    def scale_(self, factor: float) -> None:
        self.u.mul_(factor)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


class LowRankConv2d(nn.Module):
    """`rank` filters of k x k (v: rank x C_in x kh x kw), then a 1 x 1 conv to C_out (u: C_out x
    rank); no bias. The effective weight (C_out, C_in, kh, kw) has matrix rank <= rank."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        rank: int,
        stride: int = 1,
        padding: int = 0,
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.rank = in_channels, out_channels, rank
        self.kernel_size = (kernel_size, kernel_size)
        self.stride = (stride, stride)
        self.padding = (padding, padding)
        self.dilation = (1, 1)
        self.groups = 1
        self.u = nn.Parameter(torch.empty(out_channels, rank))
        self.v = nn.Parameter(torch.empty(rank, in_channels, kernel_size, kernel_size))
        _he_factors(self.u, self.v, in_channels * kernel_size * kernel_size)

    @property
    def weight(self) -> torch.Tensor:
        return torch.einsum("or,rchw->ochw", self.u, self.v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.conv2d(x, self.v, stride=self.stride, padding=self.padding)
        return F.conv2d(h, self.u[:, :, None, None])

    @torch.no_grad()
    def assign_weight(self, weight: torch.Tensor) -> None:
        """Set the factors to the best rank-`rank` approximation of weight as a (C_out, C_in*kh*kw)
        matrix (exact if its rank allows)."""
        u, v = _balanced_factors(weight.reshape(self.out_channels, -1), self.rank)
        self.u.copy_(u)
        self.v.copy_(v.reshape(self.v.shape))

    @torch.no_grad()
    def zero_rows_(self, drop: torch.Tensor) -> None:
        """Zero the effective filters where drop is True."""
        self.u[drop] = 0.0

    @torch.no_grad()
    def scale_(self, factor: float) -> None:
        self.u.mul_(factor)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"rank={self.rank}, stride={self.stride}, padding={self.padding}"
        )


LOW_RANK_LAYERS = (LowRankLinear, LowRankConv2d)


def he_init_(layer: nn.Module) -> nn.Module:
    """He-normal init for a plain encoder layer, matching the low-rank layers' effective scale."""
    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
    return layer


def linear_layer(in_features: int, out_features: int, rank: int | None) -> nn.Module:
    """Bias-free linear; factorized iff rank < min(in, out) (otherwise a rank cap is no cap)."""
    if rank is not None and rank < min(in_features, out_features):
        return LowRankLinear(in_features, out_features, rank)
    return he_init_(nn.Linear(in_features, out_features, bias=False))


def conv_layer(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    rank: int | None,
    stride: int = 1,
    padding: int = 0,
) -> nn.Module:
    """Bias-free conv (a BatchNorm follows); factorized iff rank < min(C_out, C_in * k * k)."""
    if rank is not None and rank < min(out_channels, in_channels * kernel_size**2):
        return LowRankConv2d(in_channels, out_channels, kernel_size, rank, stride, padding)
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
    return he_init_(conv)
