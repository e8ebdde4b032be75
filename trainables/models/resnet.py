"""CIFAR-style ResNet-18 (3x3 stem, no max-pool, BasicBlock x [2, 2, 2, 2]), convs optionally
rank-r factorized. Written here rather than taken from torchvision (whose stem is ImageNet's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.errors import ConfigError
from trainables.models._base import EncoderClassifier, OpNorm, check_norm
from trainables.models._lowrank import conv_layer
from trainables.models._normalize import Normalize

BLOCKS_PER_STAGE = (2, 2, 2, 2)


class BasicBlock(nn.Module):
    """relu(F(x) + S(x)), F = bn2 . conv2 . relu . bn1 . conv1; S identity or 1x1 conv + BN."""

    def __init__(self, c_in: int, c_out: int, stride: int, rank: int | None):
        super().__init__()
        self.conv1 = conv_layer(c_in, c_out, 3, rank, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv_layer(c_out, c_out, 3, rank, padding=1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Sequential | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                conv_layer(c_in, c_out, 1, rank, stride=stride), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + skip)

    def lipschitz_upper(self, p: str, op_norm: OpNorm) -> float:
        """||S|| + ||F|| (1 + ||F|| for the identity); the final ReLU is 1-Lipschitz."""
        residual = (
            op_norm(self.conv1, p) * op_norm(self.bn1, p) * op_norm(self.conv2, p)
            * op_norm(self.bn2, p)
        )
        if self.shortcut is None:
            return 1.0 + residual
        conv, bn = self.shortcut
        return op_norm(conv, p) * op_norm(bn, p) + residual


class ResNet18(EncoderClassifier):
    """Stage channels (width/8, width/4, width/2, width): width=512 is the usual ResNet-18.
    Phi(x) is the width-dim global average pool. `depth` is not used."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        width: int = 256,
        rank: int | None = None,
    ):
        super().__init__(input_shape, num_classes)
        if len(self.input_shape) != 3:
            raise ConfigError(
                f"resnet18 needs image input (C, H, W), but got {self.input_shape}; "
                "use model 'fcn'"
            )
        self.normalize = Normalize(mean, std, self.input_shape)
        channels = [max(1, width // 8), max(1, width // 4), max(1, width // 2), width]
        self.stem = conv_layer(self.input_shape[0], channels[0], 3, rank, padding=1)
        self.stem_bn = nn.BatchNorm2d(channels[0])
        blocks, c_in = [], channels[0]
        for stage, (c_out, n_blocks) in enumerate(zip(channels, BLOCKS_PER_STAGE)):
            for b in range(n_blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride, rank))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem_bn(self.stem(self.normalize(x))))
        return self.blocks(h).mean(dim=(2, 3))

    def lipschitz_upper(self, p: str, op_norm: OpNorm) -> float:
        """(1 / min std) * ||stem|| * ||stem BN|| * prod_blocks (||S|| + ||F||); ReLU and the global
        mean (1 in L-inf, 1/sqrt(HW) in L2) are 1-Lipschitz."""
        check_norm(p)
        bound = self.normalize.operator_norm() * op_norm(self.stem, p) * op_norm(self.stem_bn, p)
        for block in self.blocks:
            bound *= block.lipschitz_upper(p, op_norm)
        return float(bound)
