"""Compression kind -> class. Adding a knob: one module, one line in COMPRESSION_KINDS, its
name in trainables/variants.py."""

from __future__ import annotations

from trainables.compression._base import Compression
from trainables.compression.group_lasso import GroupLasso
from trainables.compression.l1 import L1Penalty
from trainables.compression.magnitude import MagnitudeGlobal, MagnitudeLayer
from trainables.compression.none import NoCompression
from trainables.compression.nuclear import NuclearNorm
from trainables.compression.prune_rows import PruneRows
from trainables.compression.rank import ExplicitRank
from trainables.compression.row_sparsity import RowSparsity
from trainables.compression.spectral_ratio import SpectralRatio
from trainables.compression.svd_truncate import SvdTruncate
from trainables.errors import ConfigError
from trainables.variants import check_raises, check_registry

COMPRESSION_KINDS: dict[str, type[Compression]] = {
    cls.kind: cls
    for cls in (
        NoCompression,
        L1Penalty,
        GroupLasso,
        RowSparsity,
        NuclearNorm,
        ExplicitRank,
        PruneRows,
        SvdTruncate,
        SpectralRatio,
        MagnitudeGlobal,
        MagnitudeLayer,
    )
}

check_registry("COMPRESSIONS", COMPRESSION_KINDS)  # the torch-free names the driver validates by
check_raises({kind: cls.raises for kind, cls in COMPRESSION_KINDS.items()})  # and the analysis

def get_compression(
    kind: str, *, strength: float = 0.0, proximal: bool = False, keep_frac: float = 1.0
) -> Compression:
    if kind not in COMPRESSION_KINDS:
        raise ConfigError(f"compression must be one of {list(COMPRESSION_KINDS)}, but got {kind!r}")
    return COMPRESSION_KINDS[kind](strength=strength, proximal=proximal, keep_frac=keep_frac)
