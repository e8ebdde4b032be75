"""Forget what Tune keeps per finished trial that nothing reads, so the driver stays flat in the
trial count.

Tune keeps every trial object for the whole run, and with it, per numeric result key, running
statistics (run_metadata.metric_analysis: max / min / avg / last / last-5-avg / last-10-avg) and
two deques of recent values (metric_n_steps): ~1.5 KB per key per trial. A result here has ~60
numeric keys (schema.RESULT_SCALARS and Tune's bookkeeping), ~100 KB per trial: 1 GB at 10,000
trials. Its last_result also keeps the per-attack and per-layer row lists, which the store has
already written.

At a trial's end (after every other callback: this one is last), keep the statistics of the keys
something may still rank trials by (the metrics of the trials table, the searcher's and
scheduler's objectives, Tune's iteration and time counters) and the last result's scalars; drop
the rest. The store, result.json and the progress lines are written from the live result before
this runs, so no record changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ray.tune import Callback

from trainables import schema

# Tune's own counters that ExperimentAnalysis and the end-of-run table may sort or print by.
TUNE_KEPT = ("training_iteration", "time_total_s", "time_this_iter_s", "iterations_since_restore")


class TrimFinishedTrials(Callback):
    def __init__(self, keep: Iterable[str] = ()):
        self.keep = frozenset((*schema.TRIAL_METRICS, *TUNE_KEPT, "iteration", *keep))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.trim(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.trim(trial)

    def trim(self, trial: Any) -> None:
        meta = getattr(trial, "run_metadata", None)
        if meta is None:  # a Tune without this layout: nothing to trim
            return
        for stats in (getattr(meta, "metric_analysis", None), getattr(meta, "metric_n_steps", None)):
            if isinstance(stats, dict):
                for key in [k for k in stats if k not in self.keep]:
                    del stats[key]
        last = getattr(meta, "last_result", None)
        if isinstance(last, dict):
            # Setting it also drops run_metadata's cached JSON of the untrimmed state.
            meta.last_result = {k: v for k, v in last.items() if not isinstance(v, list)}
        invalidate = getattr(trial, "invalidate_json_state", None)
        if callable(invalidate):  # the trial's own cached JSON embeds the run metadata's
            invalidate()


__all__ = ["TrimFinishedTrials"]
