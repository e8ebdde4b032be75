"""A small CNN: three conv-BN-ReLU stages (max-pool after the first two), global average pool."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from trainables.errors import ConfigError
from trainables.models._base import EncoderClassifier, OpNorm, check_norm
from trainables.models._lowrank import conv_layer
from trainables.models._normalize import Normalize


class CNN(EncoderClassifier):
    """Channels (width/4, width/2, width); Phi(x) is the width-dim global average pool.

    With `rank`, convs with rank < min(C_out, C_in*3*3) are LowRankConv2d. `depth` is not used.
    """

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
                f"cnn needs image input (C, H, W), but got {self.input_shape}; use model 'fcn'"
            )
        self.normalize = Normalize(mean, std, self.input_shape)
        channels = [self.input_shape[0], max(1, width // 4), max(1, width // 2), width]
        self.convs = nn.ModuleList(
            conv_layer(c_in, c_out, 3, rank, padding=1)
            for c_in, c_out in itertools.pairwise(channels)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in channels[1:])
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.normalize(x)
        last = len(self.convs) - 1
        for i, (conv, bn) in enumerate(zip(self.convs, self.norms)):
            h = F.relu(bn(conv(h)))
            if i < last:
                h = F.max_pool2d(h, 2)
        return h.mean(dim=(2, 3))

    def lipschitz_upper(self, p: str, op_norm: OpNorm) -> float:
        """(1 / min std) * prod over stages of ||conv|| * ||BN|| (eval-mode BN is diagonal).

        ReLU is 1-Lipschitz. Max-pool 2x2 with stride 2 has disjoint windows: each output moves by
        at most the largest change in its window, so it is 1-Lipschitz in L-inf, and summing
        squares over disjoint windows gives 1 in L2. The global mean is 1-Lipschitz in L-inf and
        1/sqrt(HW) <= 1 in L2.
        """
        check_norm(p)
        bound = self.normalize.operator_norm()
        for conv, bn in zip(self.convs, self.norms):
            bound *= op_norm(conv, p) * op_norm(bn, p)
        return float(bound)
