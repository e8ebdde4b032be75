"""TrimFinishedTrials: a finished trial keeps only the statistics something may still rank by."""

from __future__ import annotations

import pickle
import sys

from ray.train import Checkpoint, CheckpointConfig
from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.train._internal.session import _TrainingResult
from ray.tune.trainable.metadata import _TrainingRunMetadata

from sweep.trim import TrimFinishedTrials
from trainables import schema


class FakeTrial:
    def __init__(self):
        self.run_metadata = _TrainingRunMetadata()

    @property
    def last_result(self):
        return self.run_metadata.last_result


def finished_trial(epochs: int = 3) -> FakeTrial:
    trial = FakeTrial()
    for epoch in range(1, epochs + 1):
        result = {k: 0.1 * epoch for k, t in schema.RESULT_SCALARS.items() if t == "float64"}
        result.update(iteration=epoch, training_iteration=epoch, time_total_s=float(epoch),
                      robustness=[{"eps": 0.1, "robust_acc": 0.5}] * 6, layers=[{"layer": "x"}])
        trial.run_metadata.last_result = result
        for key, value in result.items():
            if isinstance(value, float | int):
                trial.run_metadata.update_metric(key, value, step=epoch)
    return trial


def size(obj) -> int:
    return len(pickle.dumps(obj))


def test_a_finished_trial_keeps_ranking_statistics_and_scalars_only():
    trial = finished_trial()
    before = size(trial.run_metadata.metric_analysis) + size(trial.run_metadata.metric_n_steps)
    last = dict(trial.last_result)
    TrimFinishedTrials(keep=("spectral_comp",)).on_trial_complete(0, [trial], trial)
    kept = set(trial.run_metadata.metric_analysis)
    assert dict(trial.run_metadata.metric_n_steps) == {}  # no windows: no update will come
    assert {"robust_acc", "clean_acc", "spectral_comp", "training_iteration"} <= kept
    assert "lip_l2" not in kept and "t_train" not in kept
    # What is kept is untouched: the objective's statistics still rank trials.
    assert trial.run_metadata.metric_analysis["robust_acc"]["max"] == last["robust_acc"]
    assert abs(trial.run_metadata.metric_analysis["robust_acc"]["avg"] - 0.2) < 1e-12
    # The last result keeps every scalar (the trials table's row is built from them) ...
    assert {k: v for k, v in last.items() if not isinstance(v, list)} == trial.last_result
    # ... and the statistics shrink to the kept keys (about a quarter of them here).
    after = size(trial.run_metadata.metric_analysis) + size(trial.run_metadata.metric_n_steps)
    assert after * 3 < before


def test_a_trimmed_trial_that_tune_updates_again_restarts_its_windows_and_serializes():
    trial = finished_trial()
    TrimFinishedTrials().on_trial_complete(0, [trial], trial)
    meta = trial.run_metadata
    meta.update_metric("robust_acc", 0.9, step=4)  # kept key: its averages go on
    meta.update_metric("lip_l2", 2.0, step=4)  # dropped key: starts over
    assert meta.metric_analysis["robust_acc"]["max"] == 0.9
    assert meta.metric_analysis["robust_acc"]["last-5-avg"] == 0.9  # the window restarted
    assert meta.metric_analysis["lip_l2"]["avg"] == 2.0
    assert list(meta.metric_n_steps["robust_acc"]["10"]) == [0.9]
    # Tune's experiment snapshot (JSON) and pickles of the trial still work.
    restored = _TrainingRunMetadata.from_json_state(meta.get_json_state())
    assert restored.metric_analysis["robust_acc"]["max"] == 0.9
    assert pickle.loads(pickle.dumps(meta)).metric_n_steps["lip_l2"]["5"][0] == 2.0


def test_the_snapshot_json_of_a_finished_trial_shrinks():
    trial = finished_trial()
    before = len(trial.run_metadata.get_json_state())
    TrimFinishedTrials().on_trial_complete(0, [trial], trial)
    assert len(trial.run_metadata.get_json_state()) * 4 < before


def test_kept_checkpoints_keep_their_checkpoint_and_scalars_only(tmp_path):
    trial = finished_trial()
    manager = _CheckpointManager(CheckpointConfig(num_to_keep=2))
    for epoch in (1, 2, 3):
        (tmp_path / str(epoch)).mkdir()
        metrics = {"robust_acc": 0.1 * epoch, "training_iteration": epoch,
                   "robustness": [{"eps": 0.1, "robust_acc": 0.5}] * 6}
        manager.register_checkpoint(
            _TrainingResult(Checkpoint.from_directory(str(tmp_path / str(epoch))), metrics)
        )
    trial.run_metadata.checkpoint_manager = manager
    TrimFinishedTrials().on_trial_complete(0, [trial], trial)
    kept = manager.best_checkpoint_results
    assert [r.checkpoint.path for r in kept] == [str(tmp_path / "2"), str(tmp_path / "3")]
    assert [r.metrics for r in kept] == [
        {"robust_acc": 0.1 * e, "training_iteration": e} for e in (2, 3)
    ]
    assert manager.latest_checkpoint_result.metrics == kept[-1].metrics


def test_errored_trials_are_trimmed_too_and_a_foreign_object_is_left_alone():
    trial = finished_trial(1)
    TrimFinishedTrials().on_trial_error(0, [trial], trial)
    assert "lip_l2" not in trial.run_metadata.metric_analysis
    TrimFinishedTrials().trim(object())  # no run_metadata: nothing to do, no error


def test_it_pickles_with_the_experiment():
    trim = pickle.loads(pickle.dumps(TrimFinishedTrials(keep=("spectral_comp",))))
    assert "spectral_comp" in trim.keep and sys.getsizeof(trim.keep) < 10_000


def test_a_finished_trial_that_reported_drops_its_default_metrics_future():
    trial = finished_trial(1)
    trial._default_result_or_future = future = object()  # stands in for an unread ObjectRef
    TrimFinishedTrials().on_trial_complete(0, [trial], trial)
    assert trial._default_result_or_future is None
    # A trial without a result of its own keeps it: Tune's last_result falls back on it.
    silent = FakeTrial()
    silent._default_result_or_future = future
    TrimFinishedTrials().on_trial_error(0, [silent], silent)
    assert silent._default_result_or_future is future


def test_the_free_heap_goes_back_every_release_every_trials_and_at_the_end(monkeypatch):
    import sweep.trim as trim_module

    calls = []
    monkeypatch.setattr(trim_module, "release_free_heap", lambda: calls.append(1))
    trim = TrimFinishedTrials(release_every=3)
    for n in range(7):
        trial = finished_trial(1)
        (trim.on_trial_complete if n % 2 else trim.on_trial_error)(0, [trial], trial)
    assert len(calls) == 2  # after the 3rd and the 6th finished trial
    trim.on_experiment_end([])
    assert len(calls) == 3


def test_release_free_heap_runs_on_this_platform():
    from sweep.trim import release_free_heap

    release_free_heap()  # glibc: malloc_trim; elsewhere: nothing, and no error


def test_release_every_must_be_positive():
    import pytest

    with pytest.raises(ValueError, match="release_every must be >= 1, but got 0"):
        TrimFinishedTrials(release_every=0)


def test_one_pickled_before_release_every_existed_still_counts():
    trim = TrimFinishedTrials()
    del trim.release_every, trim._finished  # as unpickled from an older tuner.pkl
    trial = finished_trial(1)
    trim.on_trial_complete(0, [trial], trial)
    assert trim._finished == 1
