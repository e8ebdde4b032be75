"""Forget what Tune keeps per finished trial that nothing reads, so the driver stays flat in the
trial count.

Tune keeps every trial object for the whole run, and with it, per numeric result key, running
statistics (run_metadata.metric_analysis: max / min / avg / last / last-5-avg / last-10-avg) and
two deques of recent values (metric_n_steps): ~1.5 KB per key per trial. A result here has ~60
numeric keys (schema.RESULT_SCALARS and Tune's bookkeeping), ~100 KB per trial: 1 GB at 10,000
trials. Its last_result, and the result of each checkpoint it keeps, also keep the per-attack
and per-layer row lists, which the store has already written.

At a trial's end (after every other callback: this one is last), keep the statistics of the keys
something may still rank trials by (the metrics of the trials table, the searcher's and
scheduler's objectives, Tune's iteration and time counters) and the last result's scalars; drop
the rest. The recent-value windows go for every key: they only feed the last-n averages of the
next update, and a finished trial gets none (measured: ~15 KB per trial for the kept keys alone,
and Tune's cached JSON of the run metadata holds them again, pickled as hex). The store,
result.json and the progress lines are written from the live result before this runs, so no
record changes. Every RELEASE_EVERY finished trials, and before Tune builds its ResultGrid at the
end, the C heap's free pages go back to the OS (release_free_heap).
"""

from __future__ import annotations

import ctypes
import functools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ray.tune import Callback

from trainables import schema

# Tune's own counters that ExperimentAnalysis and the end-of-run table may sort or print by.
TUNE_KEPT = ("training_iteration", "time_total_s", "time_this_iter_s", "iterations_since_restore")


# Finished trials between two hand-backs of the C heap's free pages (see release_free_heap).
RELEASE_EVERY = 200


class TrimFinishedTrials(Callback):
    def __init__(self, keep: Iterable[str] = (), release_every: int = RELEASE_EVERY):
        if release_every < 1:
            raise ValueError(f"release_every must be >= 1, but got {release_every}")
        self.keep = frozenset((*schema.TRIAL_METRICS, *TUNE_KEPT, "iteration", *keep))
        self.release_every = release_every
        self._finished = 0

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.trim(trial)
        self._count_finished()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.trim(trial)
        self._count_finished()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Tune builds the ResultGrid next (a DataFrame per trial from its result.json): the
        # run's peak. Freed heap pages handed back now are not counted in it.
        release_free_heap()

    def _count_finished(self) -> None:
        # getattr: one unpickled from an older tuner.pkl (Tuner.restore) lacks both attributes.
        self._finished = getattr(self, "_finished", 0) + 1
        if self._finished % getattr(self, "release_every", RELEASE_EVERY) == 0:
            release_free_heap()

    def trim(self, trial: Any) -> None:
        meta = getattr(trial, "run_metadata", None)
        if meta is None:  # a Tune without this layout: nothing to trim
            return
        stats = getattr(meta, "metric_analysis", None)
        if isinstance(stats, dict):
            for key in [k for k in stats if k not in self.keep]:
                del stats[key]
        if isinstance(getattr(meta, "metric_n_steps", None), dict):
            meta.metric_n_steps = RefillingWindows(getattr(meta, "_n_steps", (5, 10)))
        last = getattr(meta, "last_result", None)
        if isinstance(last, dict) and any(k != "trial_id" for k in last):
            # Tune gives each trial started on an actor the future of that actor's default
            # metrics (Trial.set_ray_actor), read only while the trial has no result of its own.
            # Unread, the ObjectRef keeps its value and task alive in Ray's core worker for the
            # whole run (2,000 trials of bench/driver_memory.py: ~5 MiB less peak, near noise).
            if getattr(trial, "_default_result_or_future", None) is not None:
                trial._default_result_or_future = None
        if isinstance(last, dict):
            # Setting it also drops run_metadata's cached JSON of the untrimmed state.
            meta.last_result = _scalars(last)
        # The kept checkpoints (sweep.tuner.CHECKPOINTS_KEPT per trial) hold their epoch's whole
        # result too, and the snapshot JSON holds them again, pickled as hex; the checkpoint stays.
        manager = getattr(meta, "checkpoint_manager", None)
        kept = [*(getattr(manager, "_checkpoint_results", None) or ()),
                getattr(manager, "_latest_checkpoint_result", None)]
        for result in kept:
            if isinstance(getattr(result, "metrics", None), dict):
                result.metrics = _scalars(result.metrics)
        if callable(getattr(meta, "invalidate_cache", None)):
            meta.invalidate_cache()  # its cached JSON embeds the checkpoint results
        invalidate = getattr(trial, "invalidate_json_state", None)
        if callable(invalidate):  # the trial's own cached JSON embeds the run metadata's
            invalidate()


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc's malloc_trim; elsewhere nothing).

    Why: on each trial event Tune re-serializes the trial's state to JSON strings of ~4-7 KB,
    which live in the C heap (Python's small-object allocator takes blocks up to 512 bytes, in
    arenas of its own); each trial's last strings live for the whole run among the freed copies,
    so the heap fills with free holes that glibc keeps resident and that Python's small objects
    never fill: ~10 KB per finished trial at 2,000 trials, measured as what malloc_trim released
    (bench/driver_memory.py --checkpoints). A call costs milliseconds.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this process already uses
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def _scalars(result: dict[str, Any]) -> dict[str, Any]:
    """A result without its per-attack and per-layer row lists (the store has written them)."""
    return {k: v for k, v in result.items() if not isinstance(v, list)}


class RefillingWindows(dict):
    """Empty metric_n_steps that refills on use: should Tune update a trimmed trial's metric
    again (a trial it restarts), its last-n averages restart from that value instead of failing."""

    def __init__(self, n_steps: Iterable[int]):
        super().__init__()
        self.n_steps = tuple(n_steps)

    def __missing__(self, metric: str) -> dict[str, deque]:
        windows = self[metric] = {str(n): deque(maxlen=n) for n in self.n_steps}
        return windows


__all__ = ["RefillingWindows", "TrimFinishedTrials", "release_free_heap"]
