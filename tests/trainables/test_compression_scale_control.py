"""The scale controls of issue 12: the scale-invariant spectral penalty, the fixed-Frobenius
projection during training, and their effect on tiny real runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables.compression import (
    encoder_fro_norms,
    fro_targets,
    get_compression,
    project_fro_,
    scale_encoder,
)
from trainables.config import TrialConfig
from trainables.errors import ConfigError
from trainables.trial import Trial
from tests.trainables.test_compression import MODEL_CASES, MODEL_IDS, make, matrices

TINY = {
    "dataset": "digits", "width": 32, "depth": 2, "epochs": 2, "n_eval": 16, "norms": ["linf"],
    "eps_linf": [0.02], "attack_steps": 2, "r_emp_samples": 0, "lr": 0.05, "threads": 1,
}


def test_spectral_ratio_is_scale_invariant_and_nuclear_is_not():
    model = make("fcn", 3)

    def value(kind: str) -> float:
        return float(get_compression(kind, strength=1.0).penalty(model).detach())

    before = {k: value(k) for k in ("spectral_ratio", "nuclear")}
    scale_encoder(model, 3.0)
    assert value("spectral_ratio") == pytest.approx(before["spectral_ratio"], rel=1e-5)
    assert value("nuclear") == pytest.approx(3 * before["nuclear"], rel=1e-5)


def test_spectral_ratio_is_bounded_by_one_and_sqrt_rank_per_layer():
    """1 <= ||sigma||_1 / ||sigma||_2 <= sqrt(rank): the penalty measures spectral spread."""
    model = make("fcn", 3)
    value = float(get_compression("spectral_ratio", strength=1.0).penalty(model).detach())
    ranks = [np.linalg.matrix_rank(m) for m in matrices(model)]
    assert len(ranks) <= value <= sum(np.sqrt(ranks)) + 1e-6


@pytest.mark.parametrize(("name", "rank"), MODEL_CASES, ids=MODEL_IDS)
def test_projection_sets_each_layer_to_its_target_and_keeps_direction(name, rank):
    model = make(name, rank)
    before = matrices(model)
    balance = [float(layer.u.detach().norm() / layer.v.detach().norm())
               for _, layer in model.encoder_layers() if hasattr(layer, "u")]
    head = model.head.weight.detach().clone()
    targets = [0.5 + i for i in range(len(before))]
    project_fro_(model, targets)
    for w, after, target in zip(before, matrices(model), targets):
        assert np.linalg.norm(after) == pytest.approx(target, rel=1e-5)
        np.testing.assert_allclose(after, w * target / np.linalg.norm(w), rtol=1e-4, atol=1e-6)
    after_balance = [float(layer.u.detach().norm() / layer.v.detach().norm())
                     for _, layer in model.encoder_layers() if hasattr(layer, "u")]
    np.testing.assert_allclose(after_balance, balance, rtol=1e-5)  # both factors by sqrt
    assert torch.equal(model.head.weight, head)


def test_projection_leaves_a_zero_layer_zero_and_checks_the_target_count():
    model = make("fcn")
    with torch.no_grad():
        model.encoder_layers()[0][1].weight.zero_()
    project_fro_(model, [1.0, 1.0])
    assert encoder_fro_norms(model)[0] == 0.0
    assert encoder_fro_norms(model)[1] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="one Frobenius target per encoder layer"):
        project_fro_(model, [1.0])
    with pytest.raises(ConfigError, match="target_fro"):
        fro_targets(model, -2.0)


def test_config_rejects_a_target_without_fixed_fro():
    with pytest.raises(ConfigError, match="needs fixed_fro=True"):
        TrialConfig(target_fro=3.0)
    assert TrialConfig(fixed_fro=True, target_fro=3.0).target_fro == 3.0


def _final_norms(config: dict) -> tuple[list[float], list[float]]:
    trial = Trial(config)
    init = encoder_fro_norms(trial.model)
    list(trial.epochs())
    return init, encoder_fro_norms(trial.model)


def test_fixed_fro_holds_each_layer_at_its_initial_norm_under_a_shrinking_knob():
    """Proximal group lasso shrinks the weights; with fixed_fro every layer ends at its initial
    Frobenius norm (rows still go exactly to zero: the projection rescales, never revives)."""
    knob = {"compression": "group_lasso", "strength": 0.5, "proximal": True}
    init, free = _final_norms({**TINY, **knob})
    assert all(f < 0.8 * i for f, i in zip(free, init))  # the knob shrinks the scale
    init_fixed, fixed = _final_norms({**TINY, **knob, "fixed_fro": True})
    np.testing.assert_allclose(init_fixed, init, rtol=1e-6)  # same seed, same initial model
    np.testing.assert_allclose(fixed, init, rtol=1e-5)


def test_target_fro_sets_every_layer_to_the_target():
    _, final = _final_norms({**TINY, "fixed_fro": True, "target_fro": 7.0})
    np.testing.assert_allclose(final, 7.0, rtol=1e-5)


def _spectral_ratio_after(strength: float) -> list[float]:
    trial = Trial({**TINY, "epochs": 3, "compression": "spectral_ratio", "strength": strength,
                   "fixed_fro": True})
    list(trial.epochs())
    out = []
    for m in matrices(trial.model):
        sigma = np.linalg.svd(m, compute_uv=False)
        out.append(sigma.sum() / np.linalg.norm(sigma))
    return out


def test_spectral_ratio_training_concentrates_the_spectrum():
    """A trend on a real tiny run: a stronger scale-invariant spectral penalty leaves every layer
    with a smaller ||sigma||_1 / ||sigma||_2 (fewer effective directions) at the same scale."""
    weak, strong = _spectral_ratio_after(0.0), _spectral_ratio_after(1.0)
    assert all(s < 0.9 * w for s, w in zip(strong, weak)), (weak, strong)
