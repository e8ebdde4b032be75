"""Entry sparsity: strength * sum |w| over the encoder's effective weights."""

from __future__ import annotations

import torch
from torch import nn

from trainables.compression._base import Compression, zero_like_params
from trainables.compression._layers import encoder_matrices, trainable_weights


class L1Penalty(Compression):
    """Proximal form: soft-thresholding by lr * strength after each step (exact zeros). For a
    low-rank layer the threshold is applied to its factors u and v (a sparser pair of factors,
    not the exact prox of |u @ v|)."""

    kind = "l1"
    supports_proximal = True
    raises = "neuron_comp_l1"
    weak = {"strength": 1e-4}
    strong = {"strength": 3e-3}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.proximal or self.strength == 0:
            return zero_like_params(model)
        return self.strength * sum(m.abs().sum() for m in encoder_matrices(model))

    @torch.no_grad()
    def after_step(self, model: nn.Module, lr: float) -> None:
        if not self.proximal or self.strength == 0:
            return
        threshold = lr * self.strength
        for _, layer in model.encoder_layers():
            for w in trainable_weights(layer):
                w.copy_(soft_threshold(w, threshold))


def soft_threshold(w: torch.Tensor, threshold: float) -> torch.Tensor:
    return torch.sign(w) * torch.clamp(w.abs() - threshold, min=0.0)
