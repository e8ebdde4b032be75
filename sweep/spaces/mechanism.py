"""Same compressibility, different mechanism: every knob crossed with the fixed-scale control.

Each knob level runs twice, once free and once with every encoder layer held at its initial
Frobenius norm (fixed_fro). A knob whose robustness effect comes from the weight scale (a nuclear
or group-lasso penalty shrinking the weights) changes between the two columns; a knob whose effect
comes from the shape of the spectrum / the row norms (rank, the scale-invariant penalties) does
not. The report can then set knobs that reach the same compressibility side by side.
"""

from __future__ import annotations

from sweep.spaces._registry import register
from sweep.spaces._scales import CPU, PAPER, SEEDS_PAPER, SMOKE
from sweep.spaces._space import Cases, Grid, Scale, Space


def mechanism_knob(
    ranks: tuple[int, ...],
    nuclear: tuple[float, ...],
    spectral_ratio: tuple[float, ...],
    group_lasso: tuple[float, ...],
    row_sparsity: tuple[float, ...],
) -> Cases:
    """Baseline, then spectral knobs (rank, nuclear, spectral_ratio), then neuron knobs (proximal
    group lasso, row sparsity): one axis."""
    return Cases(
        ({"compression": "none"},)
        + tuple({"compression": "rank", "rank": r} for r in ranks)
        + tuple({"compression": "nuclear", "strength": s} for s in nuclear)
        + tuple({"compression": "spectral_ratio", "strength": s} for s in spectral_ratio)
        + tuple(
            {"compression": "group_lasso", "strength": s, "proximal": True} for s in group_lasso
        )
        + tuple({"compression": "row_sparsity", "strength": s} for s in row_sparsity)
    )


def mechanism_scales() -> dict[str, Scale]:
    fixed_fro = Grid((False, True))
    return {
        "smoke": Scale(
            fixed=SMOKE,
            params={"knob": mechanism_knob((2,), (1e-2,), (1.0,), (1e-2,), (1.0,)),
                    "fixed_fro": fixed_fro},
        ),
        # Levels from the cpu grids that compress without collapsing clean accuracy (issue 12,
        # docs/results): nuclear 1e-2 / 1e-1, spectral_ratio 0.3 / 1.0, rank 4 / 16, group lasso
        # 6e-2 / 1e-1, row sparsity 1. 2 x 10 x 2 seeds = 40 trials.
        "cpu": Scale(
            fixed=CPU,
            params={
                "knob": mechanism_knob((4, 16), (1e-2, 1e-1), (0.3, 1.0), (6e-2, 1e-1), (1.0,)),
                "fixed_fro": fixed_fro,
                "seed": Grid((0, 1)),
            },
        ),
        "paper": Scale(
            fixed=PAPER,
            params={
                "knob": mechanism_knob((4, 16), (1e-4, 1e-3), (0.3, 1.0), (3e-4, 3e-3), (1e-3,)),
                "fixed_fro": fixed_fro,
                "seed": Grid(SEEDS_PAPER),
            },
        ),
    }


for _norm in ("linf", "l2"):
    register(
        Space(
            name=f"mechanism_{_norm}",
            description=(
                f"every spectral and neuron knob x fixed Frobenius scale (on / off) vs {_norm} "
                "robustness: same compressibility, different mechanism"
            ),
            fixed={"norms": (_norm,)},
            scales=mechanism_scales(),
            objective="spectral_comp",
        )
    )
