"""The training loop the compression tests share: SGD applying a knob exactly as the trial does
(its penalty added to the loss, its proximal step after each optimizer step)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sgd_with_knob(model, knob, data, *, lr: float, epochs: int, batch: int, seed: int = 0):
    """Train `model` in place on data.x_train / data.y_train (momentum 0.9) and return it."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(data.x_train), generator=order)
        for start in range(0, len(perm), batch):
            idx = perm[start:start + batch]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            loss = loss + knob.penalty(model)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            knob.after_step(model, lr)
    return model
