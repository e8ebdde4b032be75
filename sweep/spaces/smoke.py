"""smoke: a seconds-long sweep for tests and first runs (digits, tiny FCN, rank 1 vs 8 vs full)."""

from __future__ import annotations

from sweep.spaces._registry import register
from sweep.spaces._scales import SMOKE
from sweep.spaces._space import Grid, Scale, Space

_SMOKE_PARAMS = {"rank": Grid((1, 8, 32))}
_FIXED = {"compression": "rank", "norms": ("linf", "l2")}

register(
    Space(
        name="smoke",
        description="seconds: tiny FCN on digits, explicit rank 1 / 8 / 32, L-inf and L2",
        fixed=_FIXED,
        # The same small sweep at every scale: "smoke" is a size, whatever scale is asked for.
        scales={
            scale: Scale(fixed=SMOKE, params=_SMOKE_PARAMS) for scale in ("smoke", "cpu", "paper")
        },
        objective="spectral_comp",
    )
)
