"""Post-hoc neuron pruning: per encoder layer keep the keep_frac rows of largest L2 norm."""

from __future__ import annotations

import torch
from torch import nn

from trainables.compression._base import Compression
from trainables.compression._layers import as_matrix, row_norms, zero_rows
from trainables.schema import kept_count


class PruneRows(Compression):
    """Keeps k = max(1, ceil(keep_frac * rows)) rows (neurons / filters) per layer, zeroes the
    rest exactly (ties broken by index)."""

    kind = "prune_rows"
    post_hoc = True

    @torch.no_grad()
    def apply_post_hoc(self, model: nn.Module) -> None:
        for _, layer in model.encoder_layers():
            norms = row_norms(as_matrix(layer.weight))
            keep = torch.topk(norms, kept_count(self.keep_frac, norms.numel())).indices
            drop = torch.ones_like(norms, dtype=torch.bool)
            drop[keep] = False
            zero_rows(layer, drop)
