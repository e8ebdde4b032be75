"""Compression knobs: training-time penalties / proximal steps and post-hoc pruning / truncation.

`get_compression(kind, strength=, proximal=, keep_frac=)` returns a `Compression`; its docstring
says when the trial calls each method. `scale_encoder` is the weight-scaling control;
`project_fro_` holds every encoder layer at a target Frobenius norm (the fixed-scale control).
"""

from trainables.compression._base import Compression
from trainables.compression._registry import COMPRESSION_KINDS, get_compression
from trainables.compression.fixed_scale import encoder_fro_norms, fro_targets, project_fro_
from trainables.compression.scale import scale_encoder

__all__ = [
    "COMPRESSION_KINDS",
    "Compression",
    "encoder_fro_norms",
    "fro_targets",
    "get_compression",
    "project_fro_",
    "scale_encoder",
]
