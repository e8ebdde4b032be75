"""Post-hoc unstructured magnitude pruning: keep the keep_frac largest |weights|, zero the rest.

Two flavours: per layer (each encoder layer keeps keep_frac of its own weights) and global (one
threshold over all encoder layers, so layers with larger weights keep more). Biases and the head
are never pruned (the project's compression acts on encoder weights only).
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.compression._base import Compression
from trainables.compression._layers import assign_weight
from trainables.schema import kept_count


def _keep_largest(values: torch.Tensor, keep_frac: float) -> torch.Tensor:
    """bool mask of the kept_count(keep_frac, n) largest |values| (ties broken by index)."""
    flat = values.detach().abs().flatten()
    keep = torch.topk(flat, kept_count(keep_frac, flat.numel())).indices
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[keep] = True
    return mask.view(values.shape)


class _Magnitude(Compression):
    """What both flavours share: post hoc, strength is keep_frac."""

    raises = "neuron_comp_l1"  # zeroing the smallest weights concentrates the rows' L1 mass
    weak = {"keep_frac": 0.5}
    strong = {"keep_frac": 0.1}
    post_hoc = True


class MagnitudeLayer(_Magnitude):
    kind = "magnitude_layer"

    @torch.no_grad()
    def apply_post_hoc(self, model: nn.Module) -> None:
        for _, layer in model.encoder_layers():
            weight = layer.weight
            assign_weight(layer, weight * _keep_largest(weight, self.keep_frac))


class MagnitudeGlobal(_Magnitude):
    kind = "magnitude_global"

    @torch.no_grad()
    def apply_post_hoc(self, model: nn.Module) -> None:
        layers = [layer for _, layer in model.encoder_layers()]
        if not layers:
            return
        weights = [layer.weight for layer in layers]
        mask = _keep_largest(torch.cat([w.detach().flatten() for w in weights]), self.keep_frac)
        for layer, weight, part in zip(layers, weights, mask.split([w.numel() for w in weights])):
            assign_weight(layer, weight * part.view(weight.shape))
