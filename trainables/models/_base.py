"""What every model shares: normalize -> encoder (features) -> linear head."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from trainables.models._lowrank import LOW_RANK_LAYERS
from trainables.models._normalize import Normalize
from trainables.schema import check_norm as _check_norm

OpNorm = Callable[[nn.Module, str], float]
WEIGHT_LAYERS = (nn.Linear, nn.Conv2d, *LOW_RANK_LAYERS)


class EncoderClassifier(nn.Module):
    """Base of the models: subclasses build `self.normalize` and `self.head`, and define
    `features` (the encoder Phi on pixel input) and `lipschitz_upper`."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.normalize: Normalize
        self.head: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def lipschitz_upper(self, p: str, op_norm: OpNorm) -> float:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def encoder_layers(self) -> list[tuple[str, nn.Module]]:
        """Weight layers of the encoder in forward order (registration order), head excluded."""
        return [
            (name, module)
            for name, module in self.named_modules()
            if isinstance(module, WEIGHT_LAYERS) and not _is_head(name)
        ]


def _is_head(name: str) -> bool:
    return name == "head" or name.startswith("head.")


# The one definition lives with NORMS in trainables/schema.py; here the argument is called p.
check_norm = functools.partial(_check_norm, name="p")
