"""Evaluation-mode context and chunked forward passes shared by the metric modules."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from trainables.schema import check_norm as _check_norm

CHUNK = 256  # samples per forward pass: bounds memory for conv nets


# The one definition lives with NORMS in trainables/schema.py; here the argument is called p.
check_norm = functools.partial(_check_norm, name="p")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode (BatchNorm uses its running statistics, so the network is
    a fixed function of each sample), and restore each submodule's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


@torch.no_grad()
def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x) in eval mode, chunked."""
    with eval_mode(model):
        return torch.cat([model(chunk) for chunk in x.split(CHUNK)])
