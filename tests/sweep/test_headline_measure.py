"""The headline measure of each space separates every knob level of its cpu grid (issue 12):
comp at HEADLINE_KAPPA saturates at 1 for every rank <= 26 of a 256-wide layer, the scale-free
headline (schema.HEADLINE_STAT) does not.

Rank levels are checked on the cpu scale's model at initialization (rank is structural). Penalty
levels are checked on the same initial model after a few steps of the cpu scale's optimizer on the
knob alone (penalty gradient + its proximal step): the knob's own pull on the weights, without
data, in seconds. test_compression_scale_control checks the penalty's effect on a trained run."""

from __future__ import annotations

import json

import pytest
import torch

from sweep.spaces import get_space, trial_options
from trainables.compression import get_compression
from trainables.config import TrialConfig
from trainables.metrics import layer_metrics, network_summary
from trainables.models import build_model
from trainables.schema import HEADLINE_STAT
from trainables.trial import _make_optimizer

FASHION_SHAPE = (1, 28, 28)
STEPS = 5


def _model(cfg: TrialConfig) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(cfg.model, input_shape=FASHION_SHAPE, num_classes=10,
                       mean=torch.zeros(1, 1, 1), std=torch.ones(1, 1, 1), width=cfg.width,
                       depth=cfg.depth, rank=cfg.rank, head_bias=cfg.head_bias)


def _knob_pulled(cfg: TrialConfig) -> dict[str, float]:
    """Network summary after STEPS optimizer steps on the knob's penalty and proximal step."""
    model = _model(cfg)
    knob = get_compression(cfg.compression, strength=cfg.strength, proximal=cfg.proximal,
                           keep_frac=cfg.keep_frac)
    optimizer = _make_optimizer(cfg, model.parameters())
    for _ in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        penalty = knob.penalty(model)
        if penalty.requires_grad:
            penalty.backward()
        optimizer.step()
        knob.after_step(model, optimizer.param_groups[0]["lr"])
    return network_summary(layer_metrics(model))


def _grid(space_name: str) -> list[tuple[dict, dict]]:
    plan = get_space(space_name).resolve("cpu")
    out = []
    for encoded in plan.params["knob"].corners():
        cfg = TrialConfig.from_dict({**plan.fixed, **trial_options({"knob": encoded})})
        out.append((json.loads(encoded), _knob_pulled(cfg)))
    return out


def _assert_distinct(values: list[float], what: str) -> None:
    ordered = sorted(values)
    gaps = [b - a for a, b in zip(ordered, ordered[1:])]
    assert min(gaps) > 1e-7 * max(abs(v) for v in values), (what, ordered)


def _by_kind(results, kind: str, key: str, measure: str) -> list[float]:
    return [v for _, v in sorted((k[key], r[measure]) for k, r in results
                                 if k["compression"] == kind)]


@pytest.fixture(scope="module")
def spectral_grid():
    return _grid("spectral_linf")


def test_spectral_headline_separates_every_level_that_comp_at_kappa_does_not(spectral_grid):
    measure = HEADLINE_STAT[get_space("spectral_linf").objective]
    _assert_distinct([r[measure] for _, r in spectral_grid], measure)
    ranks = _by_kind(spectral_grid, "rank", "rank", measure)
    assert ranks == sorted(ranks)  # rises with the rank (distinct: checked above)
    dense = next(r[measure] for k, r in spectral_grid if k["compression"] == "none")
    assert dense > max(ranks)
    for kind in ("nuclear", "spectral_ratio"):
        values = _by_kind(spectral_grid, kind, "strength", measure)
        assert len(values) >= 2 and values == sorted(values, reverse=True), kind
        assert max(values) < dense  # every strength moved the spectrum
    # The contrast: comp at kappa 0.1 is 1 for every rank <= 16 (k = 26 of 256).
    saturated = [r["spectral_comp"] for k, r in spectral_grid
                 if k["compression"] == "rank" and k["rank"] <= 16]
    assert len(saturated) >= 3 and min(saturated) > 1 - 1e-6


@pytest.fixture(scope="module")
def neuron_grid():
    assert get_space("neuron_l2").resolve("cpu").params == get_space("neuron_linf").resolve(
        "cpu").params  # one grid serves both flavours
    return _grid("neuron_linf")


@pytest.mark.parametrize("space_name", ["neuron_linf", "neuron_l2"])
def test_neuron_headline_separates_every_level(neuron_grid, space_name):
    measure = HEADLINE_STAT[get_space(space_name).objective]
    results = neuron_grid
    _assert_distinct([r[measure] for _, r in results], measure)
    dense = next(r[measure] for k, r in results if k["compression"] == "none")
    for kind in ("group_lasso", "row_sparsity"):
        values = _by_kind(results, kind, "strength", measure)
        assert len(values) >= 2 and values == sorted(values, reverse=True), (kind, values)
        assert max(values) < dense
