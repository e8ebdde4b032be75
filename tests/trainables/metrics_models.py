"""Tiny models that follow the model protocol (trainables/models/__init__.py), for the metrics tests
(independent of trainables.models, which is written separately)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

OpNorm = Callable[[nn.Module, str], float]


class Normalize(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class LowRankLinear(nn.Module):
    """y = u (v x); the effective weight u @ v is what the metrics read."""

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.randn(out_features, rank) / math.sqrt(rank))
        self.v = nn.Parameter(torch.randn(rank, in_features) / math.sqrt(in_features))

    @property
    def weight(self) -> torch.Tensor:
        return self.u @ self.v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.v.T @ self.u.T


class LowRankConv2d(nn.Module):
    """rank filters of k x k, then a 1 x 1 conv to out_channels."""

    def __init__(self, cin: int, cout: int, k: int, rank: int, stride: int, padding: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(cin, rank, k, stride=stride, padding=padding, bias=False)
        self.second = nn.Conv2d(rank, cout, 1, bias=False)
        self.stride = (stride, stride)
        self.padding = (padding, padding)

    @property
    def weight(self) -> torch.Tensor:
        return torch.einsum("or,rikl->oikl", self.second.weight[:, :, 0, 0], self.first.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


class ProtocolModel(nn.Module):
    """Shared protocol surface: normalize -> encoder -> head."""

    normalize: Normalize
    head: nn.Linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class FCN(ProtocolModel):
    """Bias-free ReLU FCN; lipschitz_upper is exactly (1/min std) * prod op_norm(W_l)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        widths: Sequence[int],
        num_classes: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        rank: int | None = None,
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.normalize = Normalize(mean, std)
        layers: list[nn.Module] = []
        fan_in = math.prod(input_shape)
        for width in widths:
            if rank is None:
                layers.append(nn.Linear(fan_in, width, bias=False))
            else:
                layers.append(LowRankLinear(fan_in, width, rank))
            layers.append(nn.ReLU() if relu else nn.Identity())
            fan_in = width
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Linear(fan_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.normalize(x).flatten(1))

    def encoder_layers(self) -> list[tuple[str, nn.Module]]:
        return [(f"encoder.{i}", m) for i, m in enumerate(self.encoder) if hasattr(m, "weight")]

    def lipschitz_upper(self, p: str, op_norm: OpNorm) -> float:
        value = 1.0 / float(self.normalize.std.min())
        for _, layer in self.encoder_layers():
            value *= op_norm(layer, p)  # ReLU / identity are 1-Lipschitz
        return value


class TinyConvNet(ProtocolModel):
    """conv-BN-ReLU, a residual block, a strided (optionally low-rank) conv, global average pool."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        rank: int | None = None,
    ) -> None:
        super().__init__()
        channels = input_shape[0]
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(channels, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.block_conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.block_bn = nn.BatchNorm2d(4)
        if rank is None:
            self.conv2: nn.Module = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        else:
            self.conv2 = LowRankConv2d(4, 6, 3, rank, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(6)
        self.head = nn.Linear(6, num_classes)
        for bn in (self.bn1, self.block_bn, self.bn2):  # non-trivial eval-mode statistics
            nn.init.uniform_(bn.weight, 0.5, 1.5)
            nn.init.uniform_(bn.bias, -0.2, 0.2)
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(self.normalize(x))))
        h = F.relu(h + self.block_bn(self.block_conv(h)))
        h = F.relu(self.bn2(self.conv2(h)))
        return h.mean(dim=(2, 3))

    def encoder_layers(self) -> list[tuple[str, nn.Module]]:
        return [("conv1", self.conv1), ("block_conv", self.block_conv), ("conv2", self.conv2)]

    def lipschitz_upper(self, p: str, op_norm: OpNorm) -> float:
        value = 1.0 / float(self.normalize.std.min())
        value *= op_norm(self.conv1, p) * op_norm(self.bn1, p)
        value *= 1.0 + op_norm(self.block_conv, p) * op_norm(self.block_bn, p)
        value *= op_norm(self.conv2, p) * op_norm(self.bn2, p)
        # Global average pooling: a mean is 1-Lipschitz in L-inf and contracts L2 by sqrt(HW).
        return value


class LayerBag:
    """Just encoder_layers(): lets layer_metrics run on arbitrary (structured) layers."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        self._layers = [(f"layer{i}", m) for i, m in enumerate(layers)]

    def encoder_layers(self) -> list[tuple[str, nn.Module]]:
        return self._layers


def linear_with_weight(weight: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


def conv_with_weight(weight: torch.Tensor, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    cout, cin, kh, kw = weight.shape
    layer = nn.Conv2d(cin, cout, (kh, kw), stride=stride, padding=padding, bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


def structured_matrices(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random and structured weight matrices: the edge cases every metric must survive."""
    g = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(12, 9, generator=g)
    rank2 = torch.randn(12, 2, generator=g) @ torch.randn(2, 9, generator=g)
    zero_rows = torch.randn(12, 9, generator=g)
    zero_rows[[0, 3, 7]] = 0.0
    single = torch.zeros(12, 9)
    single[4, 5] = -3.0
    heavy_rows = torch.randn(12, 9, generator=g) * torch.logspace(0, -4, 12)[:, None]
    return {
        "gaussian": gaussian,
        "wide": torch.randn(5, 20, generator=g),
        "rank2": rank2,
        "zero_rows": zero_rows,
        "all_zero": torch.zeros(12, 9),
        "single_nonzero": single,
        "heavy_rows": heavy_rows,
        "one_by_one": torch.tensor([[2.5]]),
    }


def unrolled_conv_matrix(conv: nn.Module, input_chw: tuple[int, int, int]) -> torch.Tensor:
    """The convolution as an explicit matrix: apply it (bias-free, zero padding) to each basis
    vector of the input space."""
    n = math.prod(input_chw)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *input_chw)
    weight = conv.weight.detach().double()
    out = F.conv2d(basis, weight, None, conv.stride, conv.padding)
    return out.reshape(n, -1).T  # (out dim, in dim)


def blobs(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian blobs in [0,1]^2."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.25, 0.3], [0.75, 0.35], [0.5, 0.75]])
    x = torch.cat([c + 0.09 * torch.randn(n_per_class, 2, generator=g) for c in centers])
    y = torch.arange(3).repeat_interleave(n_per_class)
    return x.clamp(0.0, 1.0), y


@functools.lru_cache(maxsize=1)
def trained_blob_fcn() -> FCN:
    """A 2-16-16-3 ReLU FCN trained on the blobs (full batch Adam, a fraction of a second)."""
    torch.manual_seed(0)
    model = FCN((2,), [16, 16], 3, torch.full((1,), 0.5), torch.full((1,), 0.25))
    x, y = blobs(100, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(300):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()
