"""Tiny models and data for the attack tests (independent of trainables.models and .data).

sklearn's digits: 1797 8x8 images, pixels / 16 into [0,1], as (N, 1, 8, 8). The models take pixel
input and normalize inside, like the project's models. Trained models are cached per process so
every attack test file shares them.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Normalize(nn.Module):
    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


@functools.lru_cache(maxsize=1)
def digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_train, y_train, x_test, y_test): a fixed 1297 / 500 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[500:], y[500:], x[:500], y[:500]


def mlp(seed: int = 0, width: int = 64, num_classes: int = 10) -> nn.Module:
    """Normalize -> flatten -> 64-width-classes ReLU MLP, for (N, 1, 8, 8) digits."""
    torch.manual_seed(seed)
    x_train = digits()[0]
    mean = x_train.mean()
    std = x_train.std()
    return nn.Sequential(
        Normalize(mean.view(1, 1, 1), std.view(1, 1, 1)),
        nn.Flatten(),
        nn.Linear(64, width),
        nn.ReLU(),
        nn.Linear(width, num_classes),
    )


def train(model: nn.Module, x: Tensor, y: Tensor, *, epochs: int, seed: int = 0,
          batch_hook=None) -> nn.Module:
    """Adam, batch 64; `batch_hook(model, xb, yb, seed)` may replace each batch (adversarial
    training)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            xb, yb = x[idx], y[idx]
            if batch_hook is not None:
                xb = batch_hook(model, xb, yb, seed=epoch * 1000 + i)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


@functools.lru_cache(maxsize=1)
def trained_digits_mlp() -> nn.Module:
    """A plainly trained digits MLP (about 97% test accuracy). Do not modify it in a test."""
    torch.set_num_threads(1)
    x_train, y_train, _, _ = digits()
    return train(mlp(seed=0), x_train, y_train, epochs=15)


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()
