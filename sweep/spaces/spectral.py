"""Spectral compression: explicit low rank and nuclear-norm strength, evaluated in L-inf or L2."""

from __future__ import annotations

from sweep.spaces._registry import register
from sweep.spaces._scales import CPU, PAPER, SEEDS_PAPER, SMOKE
from sweep.spaces._space import Cases, Grid, Scale, Space


def spectral_knob(ranks: tuple[int, ...], nuclear: tuple[float, ...]) -> Cases:
    """Uncompressed baseline, each explicit rank, each nuclear-norm weight: one axis."""
    return Cases(
        ({"compression": "none"},)
        + tuple({"compression": "rank", "rank": r} for r in ranks)
        + tuple({"compression": "nuclear", "strength": s} for s in nuclear)
    )


def spectral_scales() -> dict[str, Scale]:
    return {
        "smoke": Scale(fixed=SMOKE, params={"knob": spectral_knob((1, 8), ())}),
        # Both ends of the trend: rank 2 (clean accuracy starts to fall) .. 128, the dense
        # baseline, and three nuclear-norm weights; 3 seeds. About 7 minutes on 2 CPUs.
        "cpu": Scale(
            fixed=CPU,
            params={
                "knob": spectral_knob((2, 4, 8, 16, 32, 64, 128), (1e-2, 3e-2, 1e-1)),
                "seed": Grid((0, 1, 2)),
            },
        ),
        "paper": Scale(
            fixed=PAPER,
            params={
                "knob": spectral_knob((2, 4, 8, 16, 32), (1e-4, 1e-3, 1e-2)),
                "seed": Grid(SEEDS_PAPER),
            },
        ),
    }


for _norm in ("linf", "l2"):
    register(
        Space(
            name=f"spectral_{_norm}",
            description=f"spectral compression (explicit rank, nuclear norm) vs {_norm} robustness",
            fixed={"norms": (_norm,)},
            scales=spectral_scales(),
            objective="spectral_comp",
        )
    )
