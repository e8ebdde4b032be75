"""KeepNewestCheckpoints: each trial keeps its newest checkpoints on disk, as num_to_keep did, and
the tuner no longer sets num_to_keep (which forced a Tune snapshot about every epoch)."""

from __future__ import annotations

import pickle

from ray.train import Checkpoint, CheckpointConfig
from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.train._internal.session import _TrainingResult
from ray.tune.trainable.metadata import _TrainingRunMetadata

from sweep.keep_checkpoints import KeepNewestCheckpoints


class FakeTrial:
    def __init__(self):
        self.run_metadata = _TrainingRunMetadata()
        # Tune's own bookkeeping as the tuner configures it: num_to_keep unset, so Tune keeps all.
        self.run_metadata.checkpoint_manager = _CheckpointManager(CheckpointConfig())


def save_epochs(tmp_path, trial, callback, epochs):
    """What Tune does per saved epoch: register the checkpoint, then call on_trial_save."""
    for epoch in epochs:
        folder = tmp_path / f"checkpoint_{epoch:06d}"
        folder.mkdir()
        (folder / "trial.pt").write_bytes(b"x")
        result = _TrainingResult(Checkpoint.from_directory(str(folder)), {"iteration": epoch})
        trial.run_metadata.checkpoint_manager.register_checkpoint(result)
        callback.on_trial_save(0, [trial], trial)


def test_only_the_newest_checkpoints_stay_on_disk_and_in_tunes_bookkeeping(tmp_path):
    trial = FakeTrial()
    save_epochs(tmp_path, trial, KeepNewestCheckpoints(2), range(1, 6))
    on_disk = sorted(p.name for p in tmp_path.iterdir())
    assert on_disk == ["checkpoint_000004", "checkpoint_000005"]
    manager = trial.run_metadata.checkpoint_manager
    kept = [r.checkpoint.path for r in manager.best_checkpoint_results]
    assert kept == [str(tmp_path / "checkpoint_000004"), str(tmp_path / "checkpoint_000005")]
    assert manager.latest_checkpoint_result.checkpoint.path == kept[-1]


def test_the_latest_checkpoint_is_never_deleted(tmp_path):
    trial = FakeTrial()
    callback = KeepNewestCheckpoints(1)
    save_epochs(tmp_path, trial, callback, [1, 2])
    manager = trial.run_metadata.checkpoint_manager
    # A score-ordered manager could list the latest first: it still stays.
    manager._checkpoint_results.reverse()
    callback.prune(trial)
    assert (tmp_path / "checkpoint_000002").is_dir()
    assert manager.latest_checkpoint_result.checkpoint.path == str(tmp_path / "checkpoint_000002")


def test_a_checkpoint_already_gone_and_a_foreign_object_are_no_error(tmp_path):
    trial = FakeTrial()
    callback = KeepNewestCheckpoints(2)
    save_epochs(tmp_path, trial, callback, [1, 2])
    (tmp_path / "checkpoint_000001" / "trial.pt").unlink()
    (tmp_path / "checkpoint_000001").rmdir()
    save_epochs(tmp_path, trial, callback, [3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000002", "checkpoint_000003"]
    callback.prune(object())


def test_it_pickles_with_the_experiment_and_checks_its_argument():
    assert pickle.loads(pickle.dumps(KeepNewestCheckpoints(3))).keep == 3
    try:
        KeepNewestCheckpoints(0)
    except ValueError as err:
        assert "keep must be an integer >= 1, but got 0" in str(err)
    else:
        raise AssertionError("keep=0 accepted")


class FakeStoreCallback:
    class store:  # noqa: N801  (stands for StoreCallback.store, a ResultStore)
        flushes = 0


def test_a_stale_checkpoint_waits_for_the_stores_next_flush(tmp_path):
    """A resume restarts from a checkpoint whose epoch the store holds: until the store flushed
    the newer epochs, the older checkpoint is the one such a resume can use."""
    trial, store = FakeTrial(), FakeStoreCallback()
    callback = KeepNewestCheckpoints(2, store=store)
    save_epochs(tmp_path, trial, callback, range(1, 5))
    assert len(list(tmp_path.iterdir())) == 4  # nothing flushed since 1 and 2 went stale
    store.store.flushes += 1
    callback.on_step_end(0, [trial])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000003", "checkpoint_000004"]
    save_epochs(tmp_path, trial, callback, [5])
    assert (tmp_path / "checkpoint_000003").is_dir()
    store.store.flushes += 1
    callback.on_experiment_end([trial])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000004", "checkpoint_000005"]
