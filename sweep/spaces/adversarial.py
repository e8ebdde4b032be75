"""Adversarial-training variants: a compression axis swept together with the AT settings."""

from __future__ import annotations

from sweep.spaces._registry import register
from sweep.spaces._scales import CPU, PAPER, SEEDS_PAPER, SMOKE
from sweep.spaces._space import Grid, Scale, Space
from sweep.spaces.neuron import neuron_knob
from sweep.spaces.spectral import spectral_knob

# Training eps per norm and scale, in pixel units (the largest evaluation eps of that scale).
_AT_EPS = {
    "linf": {"smoke": 0.05, "cpu": 0.04, "paper": 8 / 255},
    "l2": {"smoke": 0.5, "cpu": 0.5, "paper": 0.5},
}


def at_scales(norm: str, family: str) -> dict[str, Scale]:
    knob = {
        "spectral": {
            "smoke": spectral_knob((1,), ()),
            "cpu": spectral_knob((1, 4, 32), ()),
            "paper": spectral_knob((4, 16), (1e-3,)),
        },
        "neuron": {
            "smoke": neuron_knob((1e-2,), ()),
            "cpu": neuron_knob((3e-3, 1e-2), ()),
            "paper": neuron_knob((3e-4, 3e-3), (1e-3,)),
        },
    }[family]
    eps = _AT_EPS[norm]
    return {
        "smoke": Scale(
            fixed={**SMOKE, "at_steps": 2},
            params={"knob": knob["smoke"], "at_eps": Grid((eps["smoke"],))},
        ),
        "cpu": Scale(
            fixed={**CPU, "epochs": 3, "at_steps": 3},
            params={
                "knob": knob["cpu"],
                "at_eps": Grid((eps["cpu"] / 2, eps["cpu"])),
                "at_frac": Grid((0.5, 1.0)),
            },
        ),
        "paper": Scale(
            fixed=PAPER,
            params={
                "knob": knob["paper"],
                "at_eps": Grid((eps["paper"] / 2, eps["paper"])),
                "at_steps": Grid((3, 7)),
                "at_frac": Grid((0.5, 1.0)),
                "seed": Grid(SEEDS_PAPER),
            },
        ),
    }


# Compressibility objective per family and norm (neuron: row-L1 flavour for L-inf, row-L2 for L2).
_OBJECTIVE = {
    ("spectral", "linf"): "spectral_comp",
    ("spectral", "l2"): "spectral_comp",
    ("neuron", "linf"): "neuron_comp",
    ("neuron", "l2"): "neuron_comp_l2",
}

for _family in ("spectral", "neuron"):
    for _norm in ("linf", "l2"):
        register(
            Space(
                name=f"at_{_family}_{_norm}",
                description=(
                    f"{_family} compression under {_norm} adversarial training "
                    "(train eps, PGD steps, attacked fraction)"
                ),
                fixed={"norms": (_norm,), "at_norm": _norm},
                scales=at_scales(_norm, _family),
                objective=_OBJECTIVE[_family, _norm],
            )
        )
