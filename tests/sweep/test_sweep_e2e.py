"""A whole sweep through the service on a local Ray: store contents, schema, trial statuses."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from sweep.options import LaunchOptions
from sweep.preflight import Launch
from sweep.rundir import RunLocation
from sweep.service import run_sweep
from sweep.spaces import get_space, trial_options
from trainables import schema
from trainables.config import TrialConfig


def launch_for(space: str, tmp_path, **kw) -> Launch:
    """A Launch built without preflight: the faults space has a dataset missing on purpose,
    which preflight would (rightly) refuse; here the trial must meet it at run time."""
    options = LaunchOptions(
        space=space,
        scale="smoke",
        storage=str(tmp_path),
        name="run",
        metrics_port=0,
        report=False,
        dashboard=False,
        **kw,
    )
    plan = get_space(space).resolve("smoke", options.trial_overrides())
    return Launch(options, plan, RunLocation(options.storage, options.run_name()))


def read(store: str, table: str) -> pl.DataFrame:
    return pl.read_parquet(f"{store}/{table}/*.parquet")


def test_smoke_sweep_end_to_end_statuses_and_tables(ray_local, tmp_path):
    launch = launch_for("test_faults", tmp_path, max_failures=1)
    outcome = run_sweep(launch)
    store = outcome.store_dir

    meta = json.loads(Path(store, "_schema.json").read_text())
    assert meta["schema_version"] == schema.SCHEMA_VERSION
    trials = read(store, "trials")
    assert trials.height == launch.trial_count == 4
    assert set(meta["tables"]["trials"]) == set(trials.columns)
    assert trials.schema["rank"] == pl.Int64 and trials.schema["lr"] == pl.Float64

    by_case = {(r["lr"], r["dataset"], r["compression"]): r for r in trials.to_dicts()}
    ok_rank = by_case[(0.05, "digits", "rank")]
    ok_dense = by_case[(0.05, "digits", "none")]
    diverged = by_case[(1000.0, "digits", "none")]
    errored = by_case[(0.05, "fashion_mnist", "none")]
    assert ok_rank["status"] == ok_dense["status"] == "completed"
    assert diverged["status"] == "diverged" and diverged["iterations"] == 1
    assert errored["status"] == "errored" and "DatasetNotFoundError" in errored["error"]
    assert errored["failures"] == 2  # first attempt + one retry (max_failures=1)
    assert outcome.statuses == {"completed": 2, "diverged": 1, "errored": 1}

    # Tune users' tool: one row per trial that reported, with its final metrics
    from ray.tune import ExperimentAnalysis

    frame = ExperimentAnalysis(launch.location.tune_dir).dataframe()
    reported = trials.filter(pl.col("iterations") > 0)
    assert len(frame) == reported.height
    final = dict(zip(frame["trial_id"], frame["clean_acc"]))
    for row in reported.iter_rows(named=True):
        assert final[row["trial_id"]] == pytest.approx(row["clean_acc"], nan_ok=True)

    history = read(store, "history")
    assert history.group_by("trial_id", "iteration").len()["len"].max() == 1
    epochs = TrialConfig.from_dict(trial_options(launch.plan.fixed | {})).epochs
    for row in (ok_rank, ok_dense):
        its = history.filter(pl.col("trial_id") == row["trial_id"]).sort("iteration")
        assert its["iteration"].to_list() == list(range(1, epochs + 1))
        # the trials row is the last history row of the trial
        assert its["clean_acc"][-1] == row["clean_acc"]
        assert row["node_id"] and row["wall_seconds"] > 0
    div_hist = history.filter(pl.col("trial_id") == diverged["trial_id"])
    assert div_hist["diverged"].to_list() == [True]
    assert history.filter(pl.col("trial_id") == errored["trial_id"]).height == 0

    # robustness: one row per (norm, eps) of the trial's config and attack, every evaluated
    # epoch; the final epoch adds the final protocol's attack on the same samples
    config = TrialConfig.from_dict(json.loads(ok_rank["config"]))
    expected = sorted((n, e) for n in config.norms for e in config.eps_for(n))
    rob = read(store, "robustness").filter(
        (pl.col("trial_id") == ok_rank["trial_id"])
        & (pl.col("iteration") == epochs)
        & (pl.col("attack") != "uap")
    )
    for attack in (config.attack, config.final_attack):
        part = rob.filter(pl.col("attack") == attack)
        assert sorted(zip(part["norm"], part["eps"])) == expected
    assert rob.height == 2 * len(expected)
    assert (rob["n_eval"] == (config.n_eval_final or config.n_eval)).all()
    layers = read(store, "layers").filter(pl.col("trial_id") == ok_rank["trial_id"])
    assert layers.height == epochs * config.depth
    # THEORY: certified <= attacked robust accuracy <= clean accuracy, on every stored row
    assert (rob["certified_acc"] <= rob["robust_acc"] + 1e-9).all()
    assert (rob["robust_acc"] <= rob["clean_acc"] + 1e-9).all()


def test_optuna_multi_objective_with_asha(ray_local, tmp_path):
    """Optuna samples the smoke space's ranks, ASHA may stop trials early on robust_acc."""
    launch = launch_for("smoke", tmp_path, search="optuna", scheduler="asha", num_samples=4)
    outcome = run_sweep(launch)
    trials = read(outcome.store_dir, "trials")
    assert trials.height == 4 == launch.trial_count
    epochs = launch.plan.fixed["epochs"]
    for row in trials.to_dicts():
        assert row["rank"] in (1, 8, 32)
        expected = "completed" if row["iterations"] == epochs else "stopped"
        assert row["status"] == expected
