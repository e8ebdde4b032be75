"""Issue 12's spaces: a fixed-scale and an evaluation-rescaled variant of every family, the
scale-invariant spectral knob in the spectral grid, and the knob x fixed-scale mechanism space."""

from __future__ import annotations

import json

import pytest

from sweep.spaces import SCALES, get_space, list_spaces
from sweep.spaces.controls import WEIGHT_SCALES

FAMILIES = sorted(
    s.name for s in list_spaces()
    if not s.name.endswith(("_fixed", "_rescaled")) and not s.name.startswith("test_")
    and s.name not in {"smoke", "mechanism_linf", "mechanism_l2"}
)  # test_* spaces are registered by the sweep tests, after the controls were derived


def test_the_families_are_the_ones_the_issue_names():
    assert {"spectral_linf", "spectral_l2", "neuron_linf", "neuron_l2", "at_spectral_linf",
            "transfer_spectral_linf", "uap_spectral_linf"} <= set(FAMILIES)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_has_a_fixed_scale_variant_with_the_same_grid(name):
    base, fixed = get_space(name), get_space(f"{name}_fixed")
    for scale in SCALES:
        plan, plan_fixed = base.resolve(scale), fixed.resolve(scale)
        assert plan_fixed.fixed == {**plan.fixed, "fixed_fro": True}
        assert plan_fixed.trial_count("grid") == plan.trial_count("grid")
        assert all(c.fixed_fro for c in plan_fixed.corner_configs())


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_can_be_evaluated_at_several_weight_scales(name):
    base = get_space(name)
    if any("weight_scale" in base.resolve(s).params for s in SCALES):
        # The UAP family sweeps weight_scale itself: no derived variant.
        assert name == "uap_spectral_linf"
        return
    rescaled = get_space(f"{name}_rescaled")
    for scale in SCALES:
        plan = rescaled.resolve(scale)
        assert plan.params["weight_scale"].values == WEIGHT_SCALES[scale]
        assert plan.trial_count("grid") == base.resolve(scale).trial_count("grid") * len(
            WEIGHT_SCALES[scale]
        )
        assert "weight_scale" in plan.hyperparameters()


def _knobs(name: str, scale: str) -> list[dict]:
    return [json.loads(c) for c in get_space(name).resolve(scale).params["knob"].corners()]


@pytest.mark.parametrize("name", ["spectral_linf", "spectral_l2"])
def test_the_spectral_grid_includes_the_scale_invariant_spectral_knob(name):
    for scale in SCALES:
        strengths = [k["strength"] for k in _knobs(name, scale)
                     if k["compression"] == "spectral_ratio"]
        assert strengths and all(s > 0 for s in strengths), scale


@pytest.mark.parametrize("name", ["mechanism_linf", "mechanism_l2"])
def test_mechanism_space_crosses_every_knob_with_fixed_scale(name):
    for scale in SCALES:
        plan = get_space(name).resolve(scale)
        assert plan.params["fixed_fro"].values == (False, True)
        kinds = {k["compression"] for k in _knobs(name, scale)}
        assert kinds == {"none", "rank", "nuclear", "spectral_ratio", "group_lasso",
                         "row_sparsity"}
        assert {"fixed_fro", "compression", "strength", "rank"} <= set(plan.hyperparameters())


def test_the_paper_protocol_is_a_valid_override_of_every_cpu_space():
    from sweep.spaces._scales import PAPER_PROTOCOL

    for name in ("spectral_linf", "neuron_linf", "mechanism_linf", "at_spectral_linf"):
        plan = get_space(name).resolve("cpu", PAPER_PROTOCOL)
        configs = list(plan.corner_configs())
        assert all(c.optimizer == "adamw" and c.select_best and not c.head_bias for c in configs)
