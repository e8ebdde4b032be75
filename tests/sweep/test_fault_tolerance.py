"""Faults: a trial's worker killed mid-trial; the driver interrupted (SIGINT) or killed (SIGKILL)
and resumed. After each, the store holds every planned trial once and every epoch once."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
from ray.tune import Callback

from sweep.service import run_sweep
from tests.sweep.spaces_for_tests import launch_test_long
from tests.sweep.test_resume import Payload
from tests.sweep.test_sweep_e2e import launch_for, read

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 5  # test_long
PLANNED = 4


class WorkerKiller(Callback):
    """Kills (SIGKILL) the worker process of the first trial that reports epoch 2."""

    def __init__(self) -> None:
        self.killed: tuple[str, int] | None = None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.killed is None and result.get("iteration") == 2:
            self.killed = (trial.trial_id, result["pid"])
            os.kill(result["pid"], signal.SIGKILL)


def assert_exactly_once(store: str) -> pl.DataFrame:
    trials = read(store, "trials")
    assert trials.height == PLANNED and trials["trial_id"].n_unique() == PLANNED
    assert set(trials["status"]) == {"completed"}
    history = read(store, "history")
    assert set(history["trial_id"]) == set(trials["trial_id"]), "rows of no trial, or lost"
    keys = history.group_by("trial_id", "iteration").len()
    assert keys["len"].max() == 1, "a (trial_id, iteration) row is duplicated"
    for trial_id in trials["trial_id"]:
        its = sorted(history.filter(pl.col("trial_id") == trial_id)["iteration"])
        assert its == list(range(1, EPOCHS + 1)), (trial_id, its)
    for table, identity in (("robustness", ["norm", "eps", "attack"]), ("layers", ["layer"])):
        frame = read(store, table)
        rows = frame.group_by("trial_id", "iteration").len()
        assert rows.height == PLANNED * EPOCHS, table
        # Every trial has the same rows (the final epoch adds the final protocol's rows to each).
        per_trial = frame.group_by("trial_id").len()
        assert per_trial["len"].n_unique() == 1, f"{table}: a trial has extra or missing rows"
        # Each epoch's rows are distinct: catches duplicates even when every epoch has them.
        distinct = frame.unique(["trial_id", "iteration", *identity]).height
        assert distinct == frame.height, f"{table}: {frame.height - distinct} duplicated rows"
    return trials


def test_killed_worker_resumes_from_its_checkpoint(ray_local, tmp_path):
    killer = WorkerKiller()
    # A checkpoint every epoch (smoke epochs take well under the default interval).
    launch = launch_for("test_long", tmp_path, max_failures=2, checkpoint_seconds=0)
    outcome = run_sweep(launch, extra_callbacks=[killer])
    assert killer.killed is not None
    trials = assert_exactly_once(outcome.store_dir)
    victim = trials.filter(pl.col("trial_id") == killer.killed[0]).to_dicts()[0]
    assert victim["failures"] >= 1
    # it restarted after a checkpointed epoch, not from scratch
    assert victim["resumed_from"] >= 1


def launcher(tmp_path: Path, *extra: str) -> subprocess.Popen:
    # --checkpoint-seconds 0: a checkpoint every epoch, so there are some to wait for and resume
    # from (smoke epochs take well under the default interval).
    args = launch_test_long(tmp_path, "--no-dashboard", "--max-concurrent", "2",
                            "--checkpoint-seconds", "0", *extra)
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for_epoch_checkpoints(run_dir: Path, count: int, proc: subprocess.Popen) -> None:
    """Until `count` epoch checkpoints exist (trials are mid-sweep), or fail."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(list(run_dir.glob("tune/trial_*/checkpoint_*"))) >= count:
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    raise AssertionError("no checkpoints appeared")


def wait_for_stored_rows(store: Path, proc: subprocess.Popen) -> None:
    """Until the store holds history rows (flushed every few seconds), or fail."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(pl.read_parquet(p).height for p in store.glob("history/*.parquet")):
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    raise AssertionError("no history rows were flushed")


def drop_checkpoints(run_dir: Path) -> int:
    """Every checkpoint lost (say, local disks gone with the nodes): the resumed trials start
    from scratch and replay epochs the store already holds, which exactly-once must drop."""
    dropped = 0
    for checkpoint in run_dir.glob("tune/trial_*/checkpoint_*"):
        shutil.rmtree(checkpoint)
        dropped += 1
    return dropped


def interrupt_then_resume(tmp_path: Path, sig: int) -> None:
    first = launcher(tmp_path)
    wait_for_epoch_checkpoints(tmp_path / "run", 3, first)
    if sig == signal.SIGKILL:
        wait_for_stored_rows(tmp_path / "run" / "store", first)
    first.send_signal(sig)
    out, _ = first.communicate(timeout=120)
    assert first.returncode != 0, out  # it did not finish before the signal
    trials_before = read(str(tmp_path / "run" / "store"), "trials").height
    assert trials_before < PLANNED
    if sig == signal.SIGKILL:
        assert drop_checkpoints(tmp_path / "run") >= 1
    # Whoever can write the storage plants code in Tune's pickle; a resume must not run it.
    marker = tmp_path / "marker"
    (tmp_path / "run" / "tune" / "tuner.pkl").write_bytes(pickle.dumps(Payload(marker)))
    second = launcher(tmp_path, "--resume")
    out, _ = second.communicate(timeout=240)
    assert second.returncode == 0, out
    assert "resumed" in out
    assert not marker.exists()
    trials = assert_exactly_once(str(tmp_path / "run" / "store"))
    if sig == signal.SIGINT:
        assert trials["resumed_from"].max() >= 1  # restored from a checkpoint, not from scratch


def test_driver_sigint_then_resume(tmp_path):
    interrupt_then_resume(tmp_path, signal.SIGINT)


def test_driver_sigkill_then_resume(tmp_path):
    interrupt_then_resume(tmp_path, signal.SIGKILL)
