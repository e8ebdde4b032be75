"""Compression knobs: training-time penalties / proximal steps and post-hoc pruning / truncation.

`get_compression(kind, strength=, proximal=, keep_frac=)` returns a `Compression`; its docstring
says when the trial calls each method. `scale_encoder` is the weight-scaling control.
"""

from trainables.compression._base import Compression
from trainables.compression._registry import COMPRESSION_KINDS, get_compression
from trainables.compression.scale import scale_encoder

__all__ = ["COMPRESSION_KINDS", "Compression", "get_compression", "scale_encoder"]
