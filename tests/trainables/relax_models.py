"""Networks for the certificate tests: random tiny 2-D-input networks, and the project's models
(FCN dense / low-rank, CNN with BatchNorm) trained for a few seconds on sklearn digits. Trained
models are cached per process; do not modify them in a test."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.data import load_dataset
from trainables.models import LowRankLinear, build_model


def random_2d_net(hidden: tuple[int, ...], seed: int, factorized: bool = False,
                  classes: int = 3) -> nn.Sequential:
    """2 -> hidden... -> classes ReLU net with biases; with `factorized`, the second hidden layer
    (or the head's input layer when there is one hidden layer) is a LowRankLinear of rank 2 plus a
    separate bias-free path, so the relaxation sees a factorized layer."""
    torch.manual_seed(seed)
    modules: list[nn.Module] = []
    fan_in = 2
    for i, width in enumerate(hidden):
        if factorized and i == 1:
            modules += [LowRankLinear(fan_in, width, 2), nn.ReLU()]
        else:
            layer = nn.Linear(fan_in, width)
            nn.init.normal_(layer.bias, 0.0, 0.5)
            modules += [layer, nn.ReLU()]
        fan_in = width
    if factorized and len(hidden) == 1:
        modules.append(LowRankLinear(fan_in, fan_in, 2))
    head = nn.Linear(fan_in, classes)
    nn.init.normal_(head.bias, 0.0, 0.5)
    return nn.Sequential(*modules, head).eval()


@functools.lru_cache(maxsize=1)
def digits() -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    data = load_dataset("digits")
    return data.x_train, data.y_train, data.x_test, data.y_test, data.mean, data.std


def _train(model: nn.Module, epochs: int, seed: int = 0) -> nn.Module:
    x, y = digits()[:2]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@functools.lru_cache(maxsize=None)
def trained(kind: str) -> nn.Module:
    """kind: "fcn" (64-32-10), "fcn_lowrank" (64-32-32-10, rank 4), "fcn2" (64-32-32-10 dense),
    "cnn" (width 8, BatchNorm, max-pool)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mean, std = digits()[4:]
    common = dict(input_shape=(1, 8, 8), num_classes=10, mean=mean, std=std)
    if kind == "fcn":
        model = build_model("fcn", width=32, depth=1, **common)
    elif kind == "fcn2":
        model = build_model("fcn", width=32, depth=2, **common)
    elif kind == "fcn_lowrank":
        model = build_model("fcn", width=32, depth=2, rank=4, **common)
        assert isinstance(model.layers[1], LowRankLinear)
    elif kind == "cnn":
        model = build_model("cnn", width=8, **common)
    else:
        raise ValueError(kind)
    return _train(model, epochs=8 if kind == "cnn" else 10)
