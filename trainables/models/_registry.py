"""Model name -> constructor. Adding a model: one module, one line in MODEL_BUILDERS, its name in
trainables/variants.py."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainables.errors import ConfigError
from trainables.variants import check_registry
from trainables.models.cnn import CNN
from trainables.models.fcn import FCN
from trainables.models.resnet import ResNet18


def _fcn(shape, classes, mean, std, width, depth, rank) -> nn.Module:
    return FCN(shape, classes, mean, std, width=width, depth=depth, rank=rank)


def _cnn(shape, classes, mean, std, width, depth, rank) -> nn.Module:
    del depth  # fixed architecture
    return CNN(shape, classes, mean, std, width=width, rank=rank)


def _resnet18(shape, classes, mean, std, width, depth, rank) -> nn.Module:
    del depth  # fixed architecture
    return ResNet18(shape, classes, mean, std, width=width, rank=rank)


MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "fcn": _fcn,
    "cnn": _cnn,
    "resnet18": _resnet18,
}

check_registry("MODELS", MODEL_BUILDERS)  # the torch-free names the driver validates by

def build_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    width: int = 256,
    depth: int = 1,
    rank: int | None = None,
    head_bias: bool = True,
) -> nn.Module:
    """Build a model of the protocol; weights come from torch's global RNG (torch.manual_seed).

    head_bias=False swaps the head for a bias-free one with the same initial weight, so a model
    with and without head bias start from the same weights."""
    if name not in MODEL_BUILDERS:
        raise ConfigError(f"model must be one of {list(MODEL_BUILDERS)}, but got {name!r}")
    for what, value in (("width", width), ("depth", depth), ("num_classes", num_classes)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{what} must be an integer >= 1, but got {value!r}")
    if rank is not None and (not isinstance(rank, int) or rank < 1):
        raise ConfigError(f"rank must be None or an integer >= 1, but got {rank!r}")
    if name != "fcn" and len(tuple(input_shape)) != 3:
        raise ConfigError(
            f"model {name!r} needs image input (C, H, W), but got input_shape {tuple(input_shape)}; "
            "use model 'fcn' for vector data"
        )
    model = MODEL_BUILDERS[name](tuple(input_shape), num_classes, mean, std, width, depth, rank)
    if not head_bias:
        head = nn.Linear(model.head.in_features, model.head.out_features, bias=False)
        with torch.no_grad():
            head.weight.copy_(model.head.weight)
        model.head = head
    return model
