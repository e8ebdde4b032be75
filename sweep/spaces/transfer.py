"""Transfer: pretrain a compressible encoder on some classes, fine-tune the head on the others."""

from __future__ import annotations

from sweep.spaces._registry import register
from sweep.spaces._scales import CPU, PAPER, SEEDS_PAPER, SMOKE
from sweep.spaces._space import Grid, Scale, Space
from sweep.spaces.spectral import spectral_knob

# Source task: classes 0-4; target task: classes 5-9 (relabelled 0-4), encoder frozen.
_SPLIT = {"pretrain_classes": (0, 1, 2, 3, 4), "classes": (5, 6, 7, 8, 9), "freeze_encoder": True}

register(
    Space(
        name="transfer_spectral_linf",
        description="spectral compression of a pretrained encoder vs L-inf robustness downstream",
        fixed={**_SPLIT, "norms": ("linf",)},
        scales={
            "smoke": Scale(
                fixed={**SMOKE, "pretrain_epochs": 2},
                params={"knob": spectral_knob((1, 8), ())},
            ),
            "cpu": Scale(
                fixed={**CPU, "pretrain_epochs": 4, "epochs": 3},
                params={"knob": spectral_knob((1, 4, 32), (1e-2,))},
            ),
            "paper": Scale(
                fixed={**PAPER, "pretrain_epochs": 60, "epochs": 20},
                params={"knob": spectral_knob((4, 16, 32), (1e-3,)), "seed": Grid(SEEDS_PAPER)},
            ),
        },
        objective="spectral_comp",
    )
)
