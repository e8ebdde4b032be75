"""Scale controls derived from every family space (imported last by spaces/__init__).

- `<space>_fixed`: the same sweep with every encoder layer held at its initial Frobenius norm
  during training (TrialConfig.fixed_fro), so a knob can change the shape of the weights but not
  their scale (THEORY.md "Scale, homogeneity and what is scale-free").
- `<space>_rescaled`: the same sweep evaluated at several encoder weight scales (weight_scale, the
  UAP space's control, for every space). With a bias-free head (head_bias=False) decisions cannot
  change; with a head bias only its size relative to the logits can move them.
"""

from __future__ import annotations

from sweep.spaces._registry import list_spaces, register
from sweep.spaces._space import Grid, Scale, Space

# Evaluation-time encoder weight factors per scale (the uncompressed model's factor 1 included).
WEIGHT_SCALES: dict[str, tuple[float, ...]] = {
    "smoke": (1.0, 2.0),
    "cpu": (0.25, 1.0, 4.0),
    "paper": (0.5, 1.0, 2.0, 4.0),
}
# Spaces that get no derived controls: the seconds-long test sweep, and spaces that already cross
# a knob with the fixed-scale control.
_NO_CONTROLS = {"smoke", "mechanism_linf", "mechanism_l2"}


def fixed_scale_variant(space: Space) -> Space:
    return Space(
        name=f"{space.name}_fixed",
        description=f"{space.description}; every encoder layer held at its initial Frobenius norm",
        fixed={**space.fixed, "fixed_fro": True},
        scales=dict(space.scales),
        objective=space.objective,
    )


def rescaled_variant(space: Space) -> Space:
    scales = {
        name: Scale(
            fixed=scale.fixed,
            params={**scale.params, "weight_scale": Grid(WEIGHT_SCALES[name])},
            num_samples=scale.num_samples,
        )
        for name, scale in space.scales.items()
    }
    return Space(
        name=f"{space.name}_rescaled",
        description=f"{space.description}; evaluated at encoder weight scales (weight_scale)",
        fixed=space.fixed,
        scales=scales,
        objective=space.objective,
    )


def _sweeps_weight_scale(space: Space) -> bool:
    return any("weight_scale" in s.params or "weight_scale" in s.fixed
               for s in space.scales.values())


for _space in list_spaces():
    if _space.name in _NO_CONTROLS:
        continue
    register(fixed_scale_variant(_space))
    if not _sweeps_weight_scale(_space):
        register(rescaled_variant(_space))
