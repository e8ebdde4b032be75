"""The paper's fully connected network: bias-free ReLU layers, optionally rank-r factorized."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from trainables.models._base import EncoderClassifier, OpNorm, check_norm
from trainables.models._lowrank import linear_layer
from trainables.models._normalize import Normalize


class FCN(EncoderClassifier):
    """Phi(x) = relu(W_depth ... relu(W_1 N(flatten x))), `depth` hidden layers of `width`.

    With `rank`, every encoder layer whose matrix could exceed that rank (rank < min(in, out)) is
    a LowRankLinear: all width x width hidden layers, and the first layer when rank < min(input
    dim, width). The head (bias allowed) is never factorized.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        width: int = 256,
        depth: int = 1,
        rank: int | None = None,
    ):
        super().__init__(input_shape, num_classes)
        self.normalize = Normalize(mean, std, self.input_shape)
        sizes = [math.prod(self.input_shape)] + [width] * depth
        self.layers = nn.ModuleList(
            linear_layer(n_in, n_out, rank) for n_in, n_out in itertools.pairwise(sizes)
        )
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.normalize(x).flatten(1)
        for layer in self.layers:
            h = F.relu(layer(h))
        return h

    def lipschitz_upper(self, p: str, op_norm: OpNorm) -> float:
        """(1 / min std) * prod_l op_norm(W_l): ReLU is 1-Lipschitz in every Lp."""
        check_norm(p)
        bound = self.normalize.operator_norm()
        for layer in self.layers:
            bound *= op_norm(layer, p)
        return float(bound)
