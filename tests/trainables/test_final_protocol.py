"""The final evaluation protocol (trainables/trial.py, last epoch) on tiny real runs.

Per sample, on a trained model of every registered compression knob (digits, one-hidden-layer FCN):
    certified (global) => certified (linear relaxation) => exact (MILP, L-inf) => survives every
    attack => correct clean,
i.e. certified <= exact <= attacked <= clean as sets, not only as fractions. And a trial writes the
protocol's columns consistently: intervals around their accuracies, the final attack's rows on the
same n_eval_final samples as the per-epoch attack's, never weaker than it.
"""

from __future__ import annotations

import math
from functools import cache

import pytest
import torch

from trainables import schema
from trainables.attacks import run_attack
from trainables.attacks.ensemble import ensemble_robust
from trainables.compression import COMPRESSION_KINDS
from trainables.config import TrialConfig
from trainables.errors import ConfigError
from trainables.metrics import certified_mask, certified_radius, exact_robust_mask
from trainables.trial import Trial

EPS = {"linf": (0.03, 0.1), "l2": (0.3, 1.0)}
N = 40  # samples per model
N_EXACT = 16


@cache
def trained(kind: str) -> torch.nn.Module:
    """A digits FCN 64-32-10 trained by the trial with the knob at its strong setting."""
    setting = COMPRESSION_KINDS[kind].strong
    trial = Trial(TrialConfig(dataset="digits", width=32, depth=1, epochs=3, lr=0.05,
                              batch_size=64, n_eval=8, r_emp_samples=0, attack_steps=2,
                              compression=kind, final_attack="none", certify="none",
                              threads=1, **setting))
    for _ in trial.epochs():
        pass
    trial.data_test = (trial.data.x_test[:N], trial.data.y_test[:N])
    model = trial._compressed_copy().eval()
    model.test_data = trial.data_test
    return model


@pytest.mark.parametrize("kind", sorted(COMPRESSION_KINDS))
def test_per_sample_certified_exact_attacked_clean(kind):
    model = trained(kind)
    x, y = model.test_data
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    assert clean.float().mean() > 0.25, kind  # a model worth certifying (strong settings cost)
    certified_any = attacked_any = 0
    for norm, grid in EPS.items():
        r_cert = certified_radius(model, x, y, norm)
        strong = ensemble_robust(model, x, y, norm, grid, seed=1)
        for eps in grid:
            pgd = run_attack(model, x, y, name="pgd", norm=norm, eps=eps, steps=10, seed=2)
            with torch.no_grad():
                attacked = clean & (model(pgd).argmax(1) == y) & strong[eps].robust
            glob = r_cert > eps
            relaxed = certified_mask(model, x, y, norm, eps) | glob
            assert not (glob & ~relaxed).any()
            lower = relaxed
            if norm == "linf":
                exact, unknown = exact_robust_mask(model, x[:N_EXACT], y[:N_EXACT], eps)
                # Sound: proven robust is never attacked successfully, and never below CROWN.
                assert not (relaxed[:N_EXACT] & ~exact).any(), (kind, eps)
                assert not (exact & ~attacked[:N_EXACT]).any(), (kind, eps)
                assert not (exact & unknown).any()
            assert not (lower & ~attacked).any(), (kind, norm, eps)
            assert not (attacked & ~clean).any()
            certified_any += int(relaxed.sum())
            attacked_any += int((clean & ~attacked).sum())
    # Neither side is vacuous: something is certified, and the attacks fool something.
    assert certified_any > 0 and attacked_any > 0, kind


SMOKE = {"dataset": "digits", "width": 32, "depth": 1, "epochs": 2, "batch_size": 64,
         "lr": 0.05, "n_eval": 24, "n_eval_final": 40, "r_emp_samples": 8, "attack_steps": 5,
         "norms": ("linf", "l2"), "eps_linf": (0.02, 0.08), "eps_l2": (0.25, 0.75),
         "exact_samples": 8, "threads": 1}


@pytest.fixture(scope="module")
def smoke_results():
    return list(Trial(SMOKE).epochs())


def test_final_epoch_rows_are_consistent(smoke_results):
    first, last = smoke_results
    keys = set(schema.ROBUSTNESS_COLUMNS) - {"trial_id", "iteration"}
    # Other epochs: the cheap protocol only.
    assert {r["attack"] for r in first["robustness"]} == {"pgd"}
    assert all(r["n_eval"] == 24 and math.isnan(r["certified_acc_relaxed"])
               and r["n_exact"] == 0 for r in first["robustness"])
    rows = last["robustness"]
    assert all(set(r) == keys for r in rows)
    by = {(r["norm"], r["eps"], r["attack"]): r for r in rows}
    assert len(by) == len(rows) == 2 * 2 * 2
    for (norm, eps, attack), row in by.items():
        assert row["n_eval"] == SMOKE["n_eval_final"]
        for acc in ("robust_acc", "clean_acc", "certified_acc", "certified_acc_relaxed"):
            assert row[f"{acc}_lo"] <= row[acc] <= row[f"{acc}_hi"], (acc, row)
            assert row[f"{acc}_hi"] - row[f"{acc}_lo"] > 0.05  # 40 samples: a wide interval
        assert row["certified_method"] == "crown"
        assert row["certified_acc"] <= row["certified_acc_relaxed"] <= row["robust_acc"]
        assert row["robust_acc"] <= row["clean_acc"]
        assert row["n_exact"] == (SMOKE["exact_samples"] if norm == "linf" else 0)
        assert (0 <= row["exact_acc"] <= 1) if norm == "linf" else math.isnan(row["exact_acc"])
        for ratio in ("cert_ratio_global", "cert_ratio_relaxed"):
            assert 0 <= row[ratio] <= 1 + 1e-9, (ratio, row)  # a sound certificate
        assert row["cert_ratio_global"] <= row["cert_ratio_relaxed"] + 1e-12
        if attack == "ensemble":
            pgd = by[(norm, eps, "pgd")]
            assert row["robust_acc"] <= pgd["robust_acc"]
            assert row["clean_acc"] == pgd["clean_acc"]
            assert row["certified_acc_relaxed"] == pgd["certified_acc_relaxed"]
    # The headline is the final protocol's: first norm, largest eps.
    assert last["robust_acc"] == by[("linf", 0.08, "ensemble")]["robust_acc"]


def test_final_protocol_can_be_switched_off_and_validates():
    results = list(Trial({**SMOKE, "epochs": 1, "final_attack": "none", "exact_samples": 0,
                          "norms": ("linf",)}).epochs())
    rows = results[-1]["robustness"]
    assert {r["attack"] for r in rows} == {"pgd"} and all(r["n_eval"] == 24 for r in rows)
    for bad, word in (({"final_attack": "nope"}, "final_attack"), ({"certify": "lp"}, "certify"),
                      ({"n_test": 10, "n_eval_final": 20}, "n_eval_final"),
                      ({"exact_samples": 4, "depth": 2}, "exact_samples"),
                      ({"exact_samples": -1}, "exact_samples")):
        with pytest.raises(ConfigError, match=word):
            TrialConfig.from_dict({**SMOKE, **bad})


def test_final_rows_round_trip_through_the_store_and_the_report_views(smoke_results, tmp_path):
    """The real trial's rows, written by the sweep's ResultStore and read by the analysis: typed
    columns, and the final view picks the final protocol's row with its interval."""
    import json

    from analysis import load
    from analysis.bound import radius_comparison
    from analysis.views import final_robustness
    from sweep.store import ResultStore

    store = ResultStore(str(tmp_path / "store"), run_id="r1",
                        hyperparameters={"compression": "str"})
    store.open()
    for result in smoke_results:
        store.add_result("t1", result)
    store.set_trial({"trial_id": "t1", "status": "completed", "compression": "none",
                     "iterations": 2, "clean_acc": smoke_results[-1]["clean_acc"],
                     "robust_acc": smoke_results[-1]["robust_acc"]})
    store.close()
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "r1", "space": "s",
                                                   "scale": "smoke"}))
    tables = load(tmp_path)
    final = final_robustness(tables).collect()
    rows = {(r["norm"], r["eps"], r["attack"]): r for r in smoke_results[-1]["robustness"]}
    assert final.height == 4
    for row in final.iter_rows(named=True):
        strongest = min((r for k, r in rows.items() if k[:2] == (row["norm"], row["eps"])),
                        key=lambda r: r["robust_acc"])
        assert row["robust_acc"] == pytest.approx(strongest["robust_acc"])
        assert row["robust_acc_lo"] == pytest.approx(strongest["robust_acc_lo"])
        assert row["n_eval"] == SMOKE["n_eval_final"]
        assert row["certified_acc_relaxed"] == pytest.approx(strongest["certified_acc_relaxed"])
    assert set(radius_comparison(final)["certificate"]) == {"global", "relaxed"}


def test_a_sample_is_robust_only_if_it_survives_every_attack(monkeypatch):
    """With a final attack that finds nothing (it returns x), the final rows must still count
    the per-epoch attack's successes: their robust accuracy is then exactly the PGD rows'."""
    monkeypatch.setattr(Trial, "_final_attack",
                        lambda self, model, x, y, norm, grid, *certificates_and_attacked: {
                            float(e): x.clone() for e in grid})
    rows = list(Trial({**SMOKE, "epochs": 1, "exact_samples": 0}).epochs())[-1]["robustness"]
    by = {(r["norm"], r["eps"], r["attack"]): r["robust_acc"] for r in rows}
    pairs = [(v, by[(n, e, "pgd")]) for (n, e, a), v in by.items() if a == "ensemble"]
    assert len(pairs) == 4 and all(final == pgd for final, pgd in pairs)
    assert any(pgd < max(r["clean_acc"] for r in rows) for _, pgd in pairs)  # PGD found some


def test_the_final_attack_starts_from_what_the_per_epoch_attack_left(monkeypatch):
    """The ensemble is handed the per-epoch attack's examples: samples those fool are not
    attacked again (fooled_by "given"), and the final rows still count them as fooled."""
    import trainables.trial as trial_module
    from trainables.attacks import FOOLED_BY

    seen = []
    real = trial_module.ensemble_robust

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append((kwargs["given"], out))
        return out

    monkeypatch.setattr(trial_module, "ensemble_robust", spy)
    rows = list(Trial({**SMOKE, "epochs": 1, "exact_samples": 0}).epochs())[-1]["robustness"]
    assert len(seen) == 2  # one call per norm
    given_codes = 0
    for given, out in seen:
        for eps, result in out.items():
            assert eps in given
            given_codes += int((result.fooled_by == FOOLED_BY.index("given")).sum())
    assert given_codes > 0  # the per-epoch attack fooled samples the ensemble then skipped
    by = {(r["norm"], r["eps"], r["attack"]): r["robust_acc"] for r in rows}
    assert all(v <= by[(n, e, "pgd")] for (n, e, a), v in by.items() if a == "ensemble")
