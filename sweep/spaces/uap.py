"""Universal adversarial perturbations: fooling rate vs compression, and vs weight scaling.

Scaling the encoder's weights raises every operator norm without changing compressibility: the
paper's control that separates "compressible" from "large-norm".
"""

from __future__ import annotations

from sweep.spaces._registry import register
from sweep.spaces._scales import CPU, PAPER, SEEDS_PAPER, SMOKE
from sweep.spaces._space import Grid, Scale, Space
from sweep.spaces.spectral import spectral_knob

register(
    Space(
        name="uap_spectral_linf",
        description="UAP fooling rate vs spectral compression, with weight scaling as the control",
        fixed={"uap": True, "norms": ("linf",)},
        scales={
            "smoke": Scale(
                fixed=SMOKE,
                params={"knob": spectral_knob((1,), ()), "weight_scale": Grid((1.0, 2.0))},
            ),
            "cpu": Scale(
                fixed={**CPU, "epochs": 4},
                params={
                    "knob": spectral_knob((1, 4, 32), ()),
                    "weight_scale": Grid((1.0, 2.0, 4.0)),
                },
            ),
            "paper": Scale(
                fixed=PAPER,
                params={
                    "knob": spectral_knob((4, 16, 32), ()),
                    "weight_scale": Grid((0.5, 1.0, 2.0, 4.0)),
                    "seed": Grid(SEEDS_PAPER),
                },
            ),
        },
        objective="spectral_comp",
    )
)
