"""When a trial checkpoints: by wall time since its last checkpoint, and always at its final epoch
(sweep/trainable.py: CheckpointClock, is_final); every epoch is still reported."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from sweep.resume import CHECKPOINT_EPOCH_FILE
from sweep.service import run_sweep
from sweep.trainable import CheckpointClock, is_final
from tests.sweep.test_sweep_e2e import launch_for, read
from trainables.trial import Trial


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def checkpointed_epochs(seconds: float, epochs: int, *, epoch_seconds: float = 1.0,
                        diverges_at: int | None = None) -> list[int]:
    """The epochs a trial of `epochs` epochs of `epoch_seconds` each checkpoints; it diverges
    (and ends) at `diverges_at`."""
    clock = FakeClock()
    checkpoints = CheckpointClock(seconds, clock=clock)
    saved = []
    for epoch in range(1, epochs + 1):
        clock.now += epoch_seconds
        diverged = epoch == diverges_at
        trial = SimpleNamespace(finished=epoch == epochs)
        if checkpoints.due(final=is_final({"iteration": epoch, "diverged": diverged}, trial)):
            saved.append(epoch)
        if diverged:
            break
    return saved


def test_a_long_interval_checkpoints_only_the_final_epoch():
    assert checkpointed_epochs(3600, 5) == [5]
    assert checkpointed_epochs(3600, 5, diverges_at=3) == [3]
    assert checkpointed_epochs(3600, 1) == [1]


def test_zero_seconds_checkpoints_every_epoch():
    assert checkpointed_epochs(0, 5) == [1, 2, 3, 4, 5]
    assert checkpointed_epochs(0, 5, epoch_seconds=0.0) == [1, 2, 3, 4, 5]


def test_the_first_epoch_after_the_interval_elapsed_checkpoints_and_restarts_it():
    # 4 s epochs, 10 s interval: 12 s > 10 at epoch 3, then 12 s after that at epoch 6; the final.
    assert checkpointed_epochs(10, 7, epoch_seconds=4.0) == [3, 6, 7]
    clock = FakeClock()
    checkpoints = CheckpointClock(10, clock=clock)
    clock.now += 9.99
    assert not checkpoints.due(final=False)
    clock.now += 0.01  # exactly the interval since the start (or restore)
    assert checkpoints.due(final=False)
    assert not checkpoints.due(final=False)  # the interval counts from that checkpoint


def test_negative_or_nan_seconds_are_refused():
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError, match="checkpoint seconds must be >= 0"):
            CheckpointClock(bad)


def test_is_final_on_divergence_early_stop_no_epoch_left_and_when_in_doubt():
    going = SimpleNamespace(finished=False)
    assert not is_final({"diverged": False, "early_stopped": False}, going)
    assert is_final({"diverged": True}, going)
    assert is_final({"early_stopped": True}, going)
    assert is_final({}, SimpleNamespace(finished=True))
    assert is_final({}, object())  # a trial that cannot say: checkpoint


TINY = {
    "dataset": "digits", "width": 32, "depth": 1, "n_eval": 8, "norms": ["linf"],
    "eps_linf": [0.02], "attack_steps": 1, "r_emp_samples": 0, "threads": 1, "eval_every": 100,
    "n_train": 300, "final_attack": "none",
}


def final_flags(trial: Trial) -> list[bool]:
    return [is_final(result, trial) for result in trial.epochs()]


def test_a_real_trial_is_final_exactly_at_its_last_epoch_or_early_stop():
    assert final_flags(Trial({**TINY, "epochs": 3})) == [False, False, True]
    # Patience: a noisy validation loss stops it before its 8 epochs, on the early-stopped one.
    stopping = Trial({**TINY, "epochs": 8, "val_frac": 0.3, "optimizer": "adamw", "lr": 0.3,
                      "patience": 1})
    flags = final_flags(stopping)
    assert len(flags) < 8 and flags[-1] and not any(flags[:-1])
    # lr 1e6: a non-finite loss in epoch 2 of 3 ends the trial there.
    diverging = Trial({**TINY, "epochs": 3, "lr": 1e6})
    assert final_flags(diverging) == [False, True]


def test_a_sweep_with_a_long_interval_keeps_one_final_checkpoint_and_every_epoch(
    ray_local, tmp_path
):
    epochs = 3
    launch = launch_for("test_long", tmp_path, checkpoint_seconds=3600,
                        trial_options={"epochs": epochs})
    outcome = run_sweep(launch)
    trials = read(outcome.store_dir, "trials")
    assert trials.height == 4 and set(trials["status"]) == {"completed"}
    assert "checkpoint_seconds" not in trials.columns  # a sweep setting, not a hyperparameter
    trial_dirs = sorted(Path(launch.location.tune_dir).glob("trial_*"))
    assert len(trial_dirs) == 4
    for trial_dir in trial_dirs:
        # Tune numbers a trial's checkpoints from 0: only checkpoint_000000 means only one.
        checkpoints = sorted(p.name for p in trial_dir.glob("checkpoint_*"))
        assert checkpoints == ["checkpoint_000000"], (trial_dir.name, checkpoints)
        doc = json.loads((trial_dir / checkpoints[0] / CHECKPOINT_EPOCH_FILE).read_text())
        assert doc["epoch"] == epochs
    history = read(outcome.store_dir, "history")
    for trial_id in trials["trial_id"]:
        its = sorted(history.filter(pl.col("trial_id") == trial_id)["iteration"])
        assert its == list(range(1, epochs + 1)), (trial_id, its)
