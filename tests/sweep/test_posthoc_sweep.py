"""posthoc_audit end to end on a local Ray: a test-trained model with biases, compressed post hoc
by every method, audited, stored, and drawn in the report."""

from __future__ import annotations

import textwrap

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F

from sweep.options import LaunchOptions
from sweep.preflight import prepare_launch
from sweep.service import run_sweep
from trainables.audit import audit
from trainables.data import load_dataset
from trainables.errors import SweepError

FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    """
)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("posthoc_user")
    (root / "factory.py").write_text(FACTORY)
    namespace: dict = {}
    exec(compile(FACTORY, "factory", "exec"), namespace)  # the test's own, trusted code
    model = namespace["build"]()
    data = load_dataset("digits", n_train=500, n_test=200, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(5):
        for idx in torch.randperm(500).split(50):
            opt.zero_grad()
            F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
    torch.save(model.state_dict(), root / "w.pt")
    np.savez(root / "d.npz", x=data.x_test.numpy(), y=data.y_test.numpy())
    return root, model.eval(), data


def _options(root, tmp_path, **sets) -> LaunchOptions:
    return LaunchOptions(
        space="posthoc_audit", scale="smoke", storage=str(tmp_path), name="run", metrics_port=0,
        report=False, dashboard=False,
        trial_options={"model_factory": f"{root}/factory.py:build",
                       "model_weights": f"{root}/w.pt", "data_path": f"{root}/d.npz", **sets},
    )


def test_posthoc_sweep_end_to_end(ray_local, user_files, tmp_path):
    from analysis.report import write_report

    root, model, data = user_files
    launch = prepare_launch(_options(root, tmp_path))
    outcome = run_sweep(launch)
    trials = pl.read_parquet(f"{outcome.store_dir}/trials/*.parquet")
    assert trials.height == 5 and set(trials["status"]) == {"completed"}
    assert set(trials["compression"]) == {"none", "svd_truncate", "prune_rows",
                                          "magnitude_layer", "magnitude_global"}
    rob = pl.read_parquet(f"{outcome.store_dir}/robustness/*.parquet").join(
        trials.select("trial_id", "compression", "keep_frac"), on="trial_id")
    assert rob.height == 5  # one (norm, eps) at smoke scale, one row per trial
    # The uncompressed trial is exactly the audit of the user's model.
    ref = rob.filter(pl.col("compression") == "none").row(0, named=True)
    direct = audit(model, data.x_test, data.y_test, norms=("linf",), eps_linf=(0.05,),
                   attack="apgd-ce", steps=5, n_eval=32, seed=0)
    assert ref["clean_acc"] == pytest.approx(direct["clean_acc"])
    assert ref["robust_acc"] == pytest.approx(direct["robustness"][0]["robust_acc"])
    assert (rob["certified_acc"] <= rob["robust_acc"] + 1e-9).all()
    assert (rob["robust_acc"] <= rob["clean_acc"] + 1e-9).all()
    layers = pl.read_parquet(f"{outcome.store_dir}/layers/*.parquet").join(
        trials.select("trial_id", "compression"), on="trial_id")
    pruned = layers.filter(pl.col("compression") == "prune_rows")["zero_row_frac"][0]
    assert pruned == pytest.approx(1 - 8 / 32)  # keep 25% of 32 rows
    index = write_report(outcome.run_dir)
    text = (index.parent / "report.md").read_text()
    assert "structured vs unstructured" in text
    assert (index.parent / "figures" / "posthoc_frontier.png").stat().st_size > 0


def test_posthoc_launch_refuses_a_bad_model_before_ray(user_files, tmp_path):
    root, _, _ = user_files
    with pytest.raises(SweepError, match="not a plain state_dict"):
        prepare_launch(_options(root, tmp_path, model_weights=f"{root}/d.npz"))
    with pytest.raises(SweepError, match="model_factory"):
        prepare_launch(LaunchOptions(space="posthoc_audit", scale="smoke", storage=str(tmp_path),
                                     name="r2", metrics_port=0))
