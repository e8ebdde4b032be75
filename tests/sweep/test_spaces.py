"""Spaces: every registered space validates at every scale; bad definitions fail up front."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from sweep.spaces import (
    SCALES,
    Cases,
    Grid,
    IntRange,
    LogUniform,
    Scale,
    Space,
    Uniform,
    get_space,
    list_spaces,
    trial_options,
)
from trainables.config import TrialConfig
from trainables.errors import ConfigError

REQUIRED = {
    "smoke",
    "spectral_linf",
    "spectral_l2",
    "neuron_linf",
    "neuron_l2",
    "at_spectral_linf",
    "transfer_spectral_linf",
    "uap_spectral_linf",
}


def test_required_spaces_are_registered_at_every_scale():
    names = {s.name for s in list_spaces()}
    assert REQUIRED <= names
    for space in list_spaces():
        assert set(space.scales) == set(SCALES), space.name


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_grid_count_is_the_product_of_axes_and_every_point_is_a_valid_config(name):
    space = get_space(name)
    for scale in SCALES:
        plan = space.resolve(scale)
        axes = [list(p.corners()) for p in plan.params.values()]
        assert plan.trial_count("grid") == math.prod(len(a) for a in axes) * plan.num_samples
        for values in itertools.product(*axes):
            sample = {**plan.fixed, **dict(zip(plan.params, values))}
            TrialConfig.from_dict(trial_options(sample))  # raises on an invalid point


def test_scale_datasets_follow_the_design():
    assert get_space("spectral_linf").resolve("cpu").fixed["dataset"] == "fashion_mnist"
    assert get_space("smoke").resolve("smoke").fixed["dataset"] == "digits"
    paper = get_space("spectral_linf").resolve("paper").fixed
    assert (paper["dataset"], paper["model"]) == ("cifar10", "resnet18")


def test_family_knobs():
    transfer = get_space("transfer_spectral_linf").resolve("cpu").fixed
    assert set(transfer["pretrain_classes"]).isdisjoint(transfer["classes"])
    assert transfer["freeze_encoder"] is True
    uap = get_space("uap_spectral_linf").resolve("cpu")
    assert uap.fixed["uap"] is True and "weight_scale" in uap.hyperparameters()
    at = get_space("at_spectral_linf").resolve("cpu").hyperparameters()
    assert {"at_eps", "at_frac", "rank"} <= set(at)
    neuron = [dict(c) for c in get_space("neuron_linf").resolve("cpu").params["knob"].cases]
    assert {c["compression"] for c in neuron} == {"none", "group_lasso", "row_sparsity"}
    assert all(c.get("proximal") for c in neuron if c["compression"] == "group_lasso")


def test_hyperparameter_columns_are_typed_from_trialconfig():
    hp = get_space("spectral_linf").resolve("cpu").hyperparameters()
    assert hp == {"compression": "str", "rank": "int64", "strength": "float64", "seed": "int64"}


def tiny(params: dict, fixed: dict | None = None) -> Space:
    return Space(
        name="tiny",
        description="test",
        fixed=fixed or {},
        scales={"smoke": Scale(fixed={"dataset": "digits", "width": 16}, params=params)},
    )


@pytest.mark.parametrize(
    ("params", "fixed", "message"),
    [
        ({"rank": Grid((4, 32))}, None, "rank must be <= width"),
        ({"eps_linf": Grid(((0.01,), (-0.1,)))}, None, "eps >= 0"),
        ({"rnak": Grid((1,))}, None, "unknown swept option"),
        ({"rank": Grid((1,))}, {"rank": 2}, "both fixed and swept"),
        ({"strength": Uniform(0.0, 1.0), "k": Cases(({"strength": 1.0},))}, None, "more than one"),
        ({"rank": Uniform(1, 8)}, None, "integer"),  # float samples for an int option
        ({"lr": LogUniform(1e-3, 10.0), "depth": IntRange(0, 3)}, None, "depth must be"),
        ({"knob": Cases(({"compression": "rank"},))}, None, "needs rank set"),
    ],
)
def test_invalid_space_definitions_are_rejected_at_construction(params, fixed, message):
    with pytest.raises(ConfigError, match=message):
        tiny(params, fixed)


def test_bad_distribution_bounds():
    with pytest.raises(ConfigError, match="0 < low < high"):
        LogUniform(0.0, 1.0)
    with pytest.raises(ConfigError, match="low < high"):
        Uniform(1.0, 1.0)
    with pytest.raises(ConfigError, match="at least one"):
        Grid(())


def test_cases_round_trip_through_the_encoded_sample():
    knob = Cases(({"compression": "rank", "rank": 2}, {"compression": "none"}))
    encoded = knob.corners()[0]
    assert json.loads(encoded) == {"compression": "rank", "rank": 2}
    options = trial_options({"knob": encoded, "seed": 3})
    assert options == {"compression": "rank", "rank": 2, "seed": 3}


def test_unknown_scale_and_space_names():
    with pytest.raises(ConfigError, match="unknown space"):
        get_space("spectral_lnf")
    with pytest.raises(ConfigError, match="no scale"):
        get_space("smoke").resolve("huge")
