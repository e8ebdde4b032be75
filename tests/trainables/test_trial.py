"""The trial loop end to end on small real runs: determinism, resume, THEORY.md invariants, CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from trainables import schema
from trainables.attacks import minimal_eps, run_attack
from trainables.errors import CheckpointError
from trainables.metrics import certified_radius, lipschitz
from trainables.trial import Trial

TINY = {
    "dataset": "digits", "width": 64, "depth": 2, "epochs": 2, "n_eval": 96,
    "norms": ["linf", "l2"], "eps_linf": [0.02, 0.05], "eps_l2": [0.2, 0.5],
    "attack_steps": 10, "r_emp_samples": 16, "lr": 0.05, "threads": 1,
}


def _run(config: dict) -> list[dict]:
    return list(Trial(config).epochs())


@pytest.fixture(scope="module")
def trained() -> tuple[Trial, list[dict]]:
    trial = Trial({**TINY, "epochs": 3, "seed": 1})
    return trial, list(trial.epochs())


def test_result_has_every_schema_column(trained):
    _, results = trained
    assert [r["iteration"] for r in results] == [1, 2, 3]
    last = results[-1]
    assert set(schema.RESULT_SCALARS) <= set(last)
    rob_keys = set(schema.ROBUSTNESS_COLUMNS) - {"trial_id", "iteration"}
    layer_keys = set(schema.LAYERS_COLUMNS) - {"trial_id", "iteration"}
    assert last["robustness"] and all(set(r) == rob_keys for r in last["robustness"])
    assert len(last["layers"]) == 2 and all(set(r) == layer_keys for r in last["layers"])
    assert {(r["norm"], r["eps"]) for r in last["robustness"]} == {
        ("linf", 0.02), ("linf", 0.05), ("l2", 0.2), ("l2", 0.5)}
    assert last["clean_acc"] > 0.8  # digits is easy: a trial that learns nothing is a bug
    assert results[-1]["time"] > results[0]["time"]


def test_band_and_loss_gap_invariants_hold_for_every_row(trained):
    _, results = trained
    for result in results:
        for row in result["robustness"]:
            assert row["certified_acc"] <= row["robust_acc"] <= row["clean_acc"], row
            assert row["measured_gap"] <= row["bound_gap"] + 1e-6, row
            assert 0 <= row["robust_acc"] <= 1


def test_certified_radius_never_exceeds_attack_radius(trained):
    trial, _ = trained
    model = trial.model.eval()
    x, y = trial.data.x_test[:64], trial.data.y_test[:64]
    for norm, eps_max in (("linf", 0.4), ("l2", 4.0)):
        r_cert = certified_radius(model, x, y, norm)
        r_emp = minimal_eps(model, x, y, norm=norm, eps_max=eps_max, steps=20, seed=0)
        assert torch.all(r_cert <= r_emp + 1e-6), (norm, (r_cert - r_emp).max())
        assert (r_cert > 0).any()  # a certificate that is always 0 would pass vacuously


def test_sensitivity_inequalities_on_trained_layers(trained):
    """THEORY.md: ||W||_2 >= comp_k(sigma) ||W||_F / sqrt(k) and
    ||W||_inf >= comp_k(r1) ||W||_F / sqrt(k), on every layer of the trained model."""
    trial, results = trained
    tag = schema.kappa_tag(schema.HEADLINE_KAPPA)
    shapes = [m.weight.shape for _, m in trial.model.encoder_layers()]
    for row, (rows, cols) in zip(results[-1]["layers"], shapes, strict=True):
        k_sigma = schema.kept_count(schema.HEADLINE_KAPPA, min(rows, cols))
        k_rows = schema.kept_count(schema.HEADLINE_KAPPA, rows)
        spectral, neuron = row[f"spectral_comp_{tag}"], row[f"neuron_comp_l1_{tag}"]
        assert 0 < spectral <= 1 and 0 < neuron <= 1
        assert row["spec_norm"] >= spectral * row["fro_norm"] / math.sqrt(k_sigma) - 1e-6
        assert row["inf_norm"] >= neuron * row["fro_norm"] / math.sqrt(k_rows) - 1e-6
        assert row["spec_norm"] <= row["fro_norm"] + 1e-6


def test_lipschitz_bounds_the_encoder_on_trained_model(trained):
    trial, _ = trained
    model = trial.model.eval()
    x = trial.data.x_test[:32]
    delta = torch.randn_like(x) * 0.01
    with torch.no_grad():
        moved = model.features(x + delta) - model.features(x)
    for norm, ord_ in (("linf", math.inf), ("l2", 2)):
        ratio = moved.flatten(1).norm(p=ord_, dim=1) / delta.flatten(1).norm(p=ord_, dim=1)
        assert ratio.max().item() <= lipschitz(model, norm) * (1 + 1e-5)


def test_same_seed_same_results():
    first, second = _run({**TINY, "seed": 3}), _run({**TINY, "seed": 3})
    for a, b in zip(first, second):
        assert _comparable(a) == _comparable(b)
    other = _run({**TINY, "seed": 4})
    assert _comparable(other[-1]) != _comparable(first[-1])


def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path):
    config = {**TINY, "epochs": 3, "seed": 5}
    straight = _run(config)
    first = Trial(config)
    epochs = first.epochs()
    next(epochs)
    first.save(tmp_path)  # the process "dies" after epoch 1's checkpoint
    resumed = Trial(config)
    resumed.load(tmp_path)
    rest = list(resumed.epochs())
    assert [r["iteration"] for r in rest] == [2, 3]
    assert _comparable(rest[-1]) == _comparable(straight[-1])


def test_checkpoint_from_other_settings_is_refused(tmp_path):
    trial = Trial({**TINY, "epochs": 1})
    trial.save(tmp_path)
    with pytest.raises(CheckpointError, match="other settings"):
        Trial({**TINY, "epochs": 1, "width": 32}).load(tmp_path)


def test_diverging_trial_reports_once_and_stops():
    results = _run({**TINY, "epochs": 4, "lr": 1e12, "momentum": 0.0, "weight_decay": 0.0})
    assert results[-1]["diverged"] is True
    assert len(results) < 4 and all(not r["diverged"] for r in results[:-1])


def test_post_hoc_svd_truncation_is_evaluated_on_a_copy():
    config = {**TINY, "epochs": 1, "compression": "svd_truncate", "keep_frac": 0.1, "seed": 2}
    trial = Trial(config)
    (result,) = list(trial.epochs())
    ranks = [np.linalg.matrix_rank(m.weight.detach().numpy()) for _, m in
             trial.model.encoder_layers()]
    assert min(ranks) > 7  # the trained model itself keeps its full rank
    tag = schema.kappa_tag(schema.HEADLINE_KAPPA)
    # 64-wide layers keep ceil(0.1 * 64) = 7 singular values: spectral comp at kappa 0.1 is 1
    assert result["layers"][-1][f"spectral_comp_{tag}"] == pytest.approx(1.0, abs=1e-5)


def test_uap_rows_report_fooling_rates():
    (result,) = _run({**TINY, "epochs": 1, "uap": True, "norms": ["linf"]})
    uap = [r for r in result["robustness"] if r["attack"] == "uap"]
    assert [r["eps"] for r in uap] == [0.02, 0.05]
    assert all(0 <= r["fooling_rate"] <= 1 for r in uap)
    assert uap[1]["fooling_rate"] >= uap[0]["fooling_rate"] - 0.05


def test_transfer_pretrains_the_encoder_then_fine_tunes_only_the_head():
    config = {**TINY, "norms": ["linf"], "pretrain_classes": [0, 1, 2, 3, 4],
              "classes": [5, 6, 7, 8, 9], "pretrain_epochs": 2, "freeze_encoder": True}
    init = Trial({**config, "epochs": 1})
    before = [m.weight.detach().clone() for _, m in init.model.encoder_layers()]
    encoders = []
    for epochs in (1, 2):
        trial = Trial({**config, "epochs": epochs})
        results = list(trial.epochs())
        encoders.append([m.weight.detach() for _, m in trial.model.encoder_layers()])
    assert any(not torch.equal(a, b) for a, b in zip(before, encoders[0]))  # pretraining moved it
    assert all(torch.equal(a, b) for a, b in zip(*encoders))  # fine-tuning did not
    assert results[-1]["clean_acc"] > 0.6  # the frozen features transfer to the 5 new classes


def test_attacks_respect_budget_on_trained_model(trained):
    trial, _ = trained
    model = trial.model.eval()
    x, y = trial.data.x_test[:32], trial.data.y_test[:32]
    x_adv = run_attack(model, x, y, name="pgd", norm="l2", eps=0.5, steps=5, seed=0)
    assert (x_adv - x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-5


def test_cli_prints_metrics_and_rejects_bad_input():
    base = [sys.executable, "-m", "trainables.run", "--dataset", "digits", "--epochs", "1",
            "--width", "32", "--n-eval", "32", "--r-emp-samples", "4", "--attack-steps", "3",
            "--threads", "1"]  # the final protocol's many small ops slow down under contention
    ok = subprocess.run(base, check=False, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "epoch   1" in ok.stdout and "bound" in ok.stdout
    assert "ensemble" in ok.stdout  # the final epoch's protocol is printed too
    bad = subprocess.run(base + ["--rank", "999"], check=False, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "rank must be <= width" in bad.stderr


def _comparable(result: dict) -> str:
    """A result without wall-clock fields, as text (so NaN equals NaN) for exact equality."""
    drop = {"time", "epoch_seconds", *schema.TIME_BUDGET}
    return json.dumps({k: v for k, v in result.items() if k not in drop}, sort_keys=True)


def test_a_perturbation_that_fixes_a_mistake_does_not_count_as_robust():
    from trainables.trial import _attacked

    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x, y = torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 0])
    clean_correct = model(x).argmax(1) == y  # [wrong, right]
    x_fixed = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # both predicted 0 now
    assert _attacked(model, x_fixed, y, clean_correct, 0.0)["robust_acc"] == 0.5
