"""Keep each trial's newest checkpoints on storage and delete the older ones, without Tune's
forced experiment snapshots.

Why not CheckpointConfig(num_to_keep): with it set, Tune forces a full experiment snapshot
(trial states, searcher state, and an upload of the driver's staging directory with every trial's
result.json and params.json) whenever a trial has checkpointed num_to_keep times since the last
one (ray-project/ray#31613), and the driver waits for it. Trials here checkpointed every epoch
(now every --checkpoint-seconds; every epoch with 0), so that was one snapshot about every
epoch, each costing more with every trial started: the main share of the sweep's overhead
(bench/sweep_overhead.py). Tune's snapshot only serves Tune's own restore, which a resume never
uses (sweep/resume.py rebuilds from run.json, the store and the checkpoints' sweep_epoch.json),
so the periodic snapshot (TUNE_GLOBAL_CHECKPOINT_S, auto: at most ~5% of the time) and the one at
the end are enough.

So the tuner leaves num_to_keep unset and this callback does what it did: after Tune registered a
trial's new checkpoint (on_trial_save), every registered checkpoint but the newest `keep` is
dropped from the trial's checkpoint bookkeeping and deleted from storage; the latest one never is.

A resume restarts a trial from its newest checkpoint whose epoch the store holds on disk. The
store flushed at every forced snapshot, so that checkpoint used to exist; now the store flushes
every few seconds, so a stale checkpoint is deleted only once the store has flushed after it went
stale (the epoch of the newer checkpoint that replaced it is then on disk). Given no store, at once.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.tune import Callback

log = logging.getLogger(__name__)


class KeepNewestCheckpoints(Callback):
    """store: the sweep's StoreCallback (its .store is the ResultStore), or None."""

    def __init__(self, keep: int = 2, store: Any = None):
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be an integer >= 1, but got {keep!r}")
        self.keep = keep
        self.store = store
        self._stale: list[tuple[int, Any]] = []  # (store flushes when it went stale, checkpoint)

    def on_trial_save(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.prune(trial)
        self.delete_flushed()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._stale:
            self.delete_flushed()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # After the StoreCallback (earlier in the list) closed the store, so after its last flush.
        self.delete_flushed()

    def _flushes(self) -> int | None:
        store = getattr(self.store, "store", None)
        return getattr(store, "flushes", None)

    def delete_flushed(self) -> None:
        """Delete the stale checkpoints the store has flushed past (all of them without one)."""
        flushes = self._flushes()
        due = [c for n, c in self._stale if flushes is None or n < flushes]
        self._stale = [(n, c) for n, c in self._stale if flushes is not None and n >= flushes]
        for checkpoint in due:
            _delete(checkpoint)

    def prune(self, trial: Any) -> None:
        meta = getattr(trial, "run_metadata", None)
        manager = getattr(meta, "checkpoint_manager", None)
        results = getattr(manager, "_checkpoint_results", None)
        if not isinstance(results, list) or len(results) <= self.keep:
            return  # a Tune without this layout, or nothing to delete yet
        latest = getattr(manager, "_latest_checkpoint_result", None)
        stale = [r for r in results[: -self.keep] if r is not latest]
        # Bookkeeping first, as Tune does: no one is handed a checkpoint being deleted.
        manager._checkpoint_results = [r for r in results if not any(r is s for s in stale)]
        flushes = self._flushes() or 0
        self._stale += [(flushes, getattr(r, "checkpoint", None)) for r in stale]
        if callable(getattr(meta, "invalidate_cache", None)):
            meta.invalidate_cache()  # its cached JSON lists the checkpoints
        if callable(getattr(trial, "invalidate_json_state", None)):
            trial.invalidate_json_state()


def _delete(checkpoint: Any) -> None:
    """Delete a checkpoint directory; one already gone (or unreachable) is only logged."""
    fs, path = getattr(checkpoint, "filesystem", None), getattr(checkpoint, "path", None)
    if fs is None or not path:
        return
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        pass
    except OSError as err:  # a full or flaky storage must not fail the sweep (Tune's doesn't)
        log.warning("could not delete old checkpoint %s: %s", path, err)


__all__ = ["KeepNewestCheckpoints"]
