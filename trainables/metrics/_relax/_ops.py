"""The operations a network is read as for bound propagation: affine maps and two nonlinearities.

Shapes: a forward tensor is (B, *shape) for B samples. A backward coefficient tensor `lam` is
(B, M, *shape): M linear functions of the op's output per sample; `backward` returns the same M
functions of the op's input (the vector-Jacobian product lam A), so memory stays
O(B x M x activation size) and no op ever builds its matrix.

Affine ops (`linear = True`) offer forward (A x + b), forward_abs (|A| r, for interval centres and
radii), forward_sq ((A o A) r: squared row norms, for L2 balls), backward (lam A) and bias_term
(lam . b). Nonlinear ops offer ibp (bounds of the output
from bounds of the input) and relax (lam -> lam', bias: a linear LOWER bound of lam . op(z) in z,
valid for every z in the input bounds).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


class Op:
    linear = True
    mixing = False  # an affine op whose matrix is not diagonal (Dense, Conv, GlobalMean)
    in_shape: tuple[int, ...] = ()  # per-sample input shape, set by Chain.__init__

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class Dense(Op):
    """x -> x W^T + b on (B, in)."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        self.weight = weight
        self.bias = bias

    def forward(self, x: Tensor) -> Tensor:
        out = x @ self.weight.T
        return out if self.bias is None else out + self.bias

    mixing = True

    def forward_abs(self, r: Tensor) -> Tensor:
        return r @ self.weight.abs().T

    def forward_sq(self, r: Tensor) -> Tensor:
        return r @ self.weight.square().T

    def backward(self, lam: Tensor) -> Tensor:
        return lam @ self.weight

    def bias_term(self, lam: Tensor) -> Tensor | None:
        return None if self.bias is None else lam @ self.bias


class Conv(Op):
    """2-D convolution (groups 1, dilation 1); backward is conv_transpose via conv2d_input."""

    def __init__(self, weight: Tensor, bias: Tensor | None, stride, padding) -> None:
        self.weight, self.bias = weight, bias
        self.stride, self.padding = tuple(stride), tuple(padding)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    mixing = True

    def forward_abs(self, r: Tensor) -> Tensor:
        return F.conv2d(r, self.weight.abs(), None, self.stride, self.padding)

    def forward_sq(self, r: Tensor) -> Tensor:
        return F.conv2d(r, self.weight.square(), None, self.stride, self.padding)

    def backward(self, lam: Tensor) -> Tensor:
        b, m = lam.shape[:2]
        flat = lam.reshape(b * m, *lam.shape[2:])
        out = torch.nn.grad.conv2d_input(
            (b * m, *self.in_shape), self.weight, flat, self.stride, self.padding
        )
        return out.reshape(b, m, *self.in_shape)

    def bias_term(self, lam: Tensor) -> Tensor | None:
        return None if self.bias is None else lam.sum(dim=(3, 4)) @ self.bias


class Scale(Op):
    """x -> x * s + t with s, t broadcastable to one sample (diagonal: Normalize, BatchNorm)."""

    def __init__(self, scale: Tensor, shift: Tensor) -> None:
        self.scale, self.shift = scale, shift

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift

    def forward_abs(self, r: Tensor) -> Tensor:
        return r * self.scale.abs()

    def forward_sq(self, r: Tensor) -> Tensor:
        return r * self.scale.square()

    def backward(self, lam: Tensor) -> Tensor:
        return lam * self.scale

    def bias_term(self, lam: Tensor) -> Tensor | None:
        return (lam * self.shift).flatten(2).sum(dim=2)


class Reshape(Op):
    """Flatten (or any reshape) of each sample."""

    def __init__(self, out_shape: tuple[int, ...]) -> None:
        self.out_shape = out_shape

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), *self.out_shape)

    forward_abs = forward_sq = forward

    def backward(self, lam: Tensor) -> Tensor:
        return lam.reshape(*lam.shape[:2], *self.in_shape)

    def bias_term(self, lam: Tensor) -> Tensor | None:
        return None


class GlobalMean(Op):
    """(B, C, H, W) -> (B, C, 1, 1): the mean over positions (global average pooling)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3), keepdim=True)

    mixing = True
    forward_abs = forward

    def forward_sq(self, r: Tensor) -> Tensor:
        return self.forward(r) / (r.shape[2] * r.shape[3])

    def backward(self, lam: Tensor) -> Tensor:
        c, h, w = self.in_shape
        return lam.expand(*lam.shape[:3], h, w) / (h * w)

    def bias_term(self, lam: Tensor) -> Tensor | None:
        return None


class ReLU(Op):
    """CROWN's relaxation: upper line through (l, 0) and (u, u); lower slope 1 if u > -l else 0
    (the choice that minimises the relaxation's area), exact on stable neurons."""

    linear = False

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp_min(0.0)

    def ibp(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        return lo.clamp_min(0.0), hi.clamp_min(0.0)

    def relax(self, lam: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        unstable = (lo < 0) & (hi > 0)
        width = (hi - lo).clamp_min(torch.finfo(lo.dtype).tiny)
        up_slope = torch.where(unstable, hi / width, (lo >= 0).to(lo.dtype))
        up_shift = torch.where(unstable, -lo * up_slope, 0.0)
        low_slope = torch.where(unstable, (hi > -lo).to(lo.dtype), (lo >= 0).to(lo.dtype))
        pos, neg = lam.clamp_min(0.0), lam.clamp_max(0.0)
        # lam . relu(z) >= pos . (low_slope z) + neg . (up_slope z + up_shift)
        new_lam = pos * low_slope[:, None] + neg * up_slope[:, None]
        bias = (neg * up_shift[:, None]).flatten(2).sum(dim=2)
        return new_lam, bias


class MaxPool(Op):
    """Non-overlapping k x k max-pool (stride k, no padding, floor). Relaxation (DeepPoly's):
    lower max >= z_i* with i* the window entry of largest lower bound; upper max <= z_i* when that
    entry dominates the window (l_i* >= every other u), else max <= max_i u_i (a constant)."""

    linear = False

    def __init__(self, k: int) -> None:
        self.k = k

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.k)

    def ibp(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        return F.max_pool2d(lo, self.k), F.max_pool2d(hi, self.k)

    def _windows(self, t: Tensor) -> Tensor:
        """(..., C, H, W) -> (..., C, H//k, W//k, k*k)."""
        k = self.k
        *lead, c, h, w = t.shape
        ho, wo = h // k, w // k
        t = t[..., : ho * k, : wo * k].reshape(*lead, c, ho, k, wo, k)
        n = len(lead)
        order = (*range(n), n, n + 1, n + 3, n + 2, n + 4)
        return t.permute(order).reshape(*lead, c, ho, wo, k * k)

    def relax(self, lam: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        k = self.k
        lw, uw = self._windows(lo), self._windows(hi)  # (B, C, Ho, Wo, k*k)
        star = lw.argmax(dim=-1, keepdim=True)
        l_star = lw.gather(-1, star)
        others = uw.scatter(-1, star, -math.inf).amax(dim=-1)
        dominated = (l_star.squeeze(-1) >= others).to(lo.dtype)
        top = uw.amax(dim=-1)
        pos, neg = lam.clamp_min(0.0), lam.clamp_max(0.0)
        coef = pos + neg * dominated[:, None]
        bias = (neg * ((1.0 - dominated) * top)[:, None]).flatten(2).sum(dim=2)
        b, m = lam.shape[:2]
        c, ho, wo = lam.shape[2:]
        windows = lam.new_zeros(b, m, c, ho, wo, k * k)
        windows.scatter_(-1, star[:, None].expand(b, m, c, ho, wo, 1), coef[..., None])
        grid = windows.reshape(b, m, c, ho, wo, k, k).permute(0, 1, 2, 3, 5, 4, 6)
        grid = grid.reshape(b, m, c, ho * k, wo * k)
        _, h, w = self.in_shape
        return F.pad(grid, (0, w - wo * k, 0, h - ho * k)), bias
