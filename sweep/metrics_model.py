"""The sweep's Prometheus metric model: what is counted, per trial and overall, in one registry.

No Ray and no HTTP here: sweep/metrics_export.py feeds this from Ray Tune's hooks and
sweep/metrics_endpoint.py serves its registry. Each model owns a CollectorRegistry (not
prometheus_client's global one), so several sweeps can run one after another in one process
(tests) without duplicate-metric errors.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sweep.spaces import configured_epochs
from trainables import schema

METRIC_PREFIX = "sweep_"
RUN_LABEL = "run"  # on every series: the run name (the Grafana dashboard's $run variable)
# Live states, then the final statuses the store records (schema.TRIAL_STATUSES).
TRIAL_STATES: tuple[str, ...] = ("pending", "running", *schema.TRIAL_STATUSES)
# Result keys exported per trial as sweep_trial_<key>: the same final metrics the trials table has.
PER_TRIAL_KEYS: tuple[str, ...] = schema.TRIAL_METRICS
# Smoke epochs take well under a second, paper-scale GPU epochs minutes.
EPOCH_SECONDS_BUCKETS: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
)

# Ray Tune Trial.status values -> our state label (terminal ones are refined by trial_state()).
_RAY_STATUS = {"PENDING": "pending", "PAUSED": "pending", "RUNNING": "running", "ERROR": "errored"}


def trial_state(
    status: str, last_result: Mapping[str, Any] | None, config: Mapping[str, Any] | None
) -> str:
    """One of TRIAL_STATES for a Ray Tune trial status, its last result and its config.

    A TERMINATED trial gets schema.trial_status (the rule the store uses), with the epoch budget
    read from its config as the store reads it (Cases decoded, TrialConfig's default when unset).
    """
    if status != "TERMINATED":
        return _RAY_STATUS.get(status, "pending")
    return schema.trial_status(last_result, configured_epochs(config))


class SweepMetricModel:
    """The metrics of one sweep. Per-trial series are bounded: beyond max_trial_series trials the
    oldest finished trial's series are dropped (Prometheus keeps every label set as a series)."""

    def __init__(
        self, space: str, run_id: str, max_trial_series: int, rate_window_s: float
    ) -> None:
        self.space = space
        self.run_id = run_id
        self.max_trial_series = max_trial_series
        self.rate_window_s = float(rate_window_s)
        self._result_times: deque[float] = deque()
        self._rate_lock = threading.Lock()  # the rate gauge is read in the HTTP server's thread
        self._started_at = time.monotonic()
        self._final_state: dict[str, str] = {}  # trial_id -> state fixed by complete/error hooks
        self._final_counts: collections.Counter[str] = collections.Counter()  # of _final_state
        self._live: dict[str, Any] = {}  # trial_id -> Tune trial, started and not finished
        self._series: OrderedDict[str, None] = OrderedDict()  # trials with gauges, oldest first
        self._finished: OrderedDict[str, None] = OrderedDict()  # of those, finished, oldest first
        self._build()

    def _build(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = METRIC_PREFIX
        # Every series carries run=<run name> (RUN_LABEL), so sweeps scraped by one Prometheus
        # stay apart; unlabelled metrics are bound to this run's child at once.
        run = {RUN_LABEL: self.run_id}
        info = Gauge(
            f"{p}info", "Constant 1; labels name the sweep", [RUN_LABEL, "run_id", "space"],
            registry=r,
        )
        info.labels(run_id=self.run_id, space=self.space, **run).set(1)
        self._trials = Gauge(f"{p}trials", "Trials by state", [RUN_LABEL, "state"], registry=r)
        for state in TRIAL_STATES:
            self._trials.labels(state=state, **run).set(0)
        self._results = Counter(
            f"{p}results", "Results reported by all trials", [RUN_LABEL], registry=r
        ).labels(**run)
        rate = Gauge(
            f"{p}results_per_second",
            f"Results per second over the last {self.rate_window_s:g} s",
            [RUN_LABEL],
            registry=r,
        ).labels(**run)
        rate.set_function(self._results_per_second)
        self._epoch_seconds = Histogram(
            f"{p}epoch_seconds",
            "Duration of one trial epoch (result epoch_seconds)",
            [RUN_LABEL],
            buckets=EPOCH_SECONDS_BUCKETS,
            registry=r,
        ).labels(**run)
        self.retries = Counter(
            f"{p}trial_retries", "Trial failures that Tune retries (on_trial_recover)",
            [RUN_LABEL], registry=r,
        ).labels(**run)
        self.restores = Counter(
            f"{p}trial_restores", "Trials restored from a checkpoint (on_trial_restore)",
            [RUN_LABEL], registry=r,
        ).labels(**run)
        self.failures = Counter(
            f"{p}trial_failures", "Trials that failed for good (on_trial_error)", [RUN_LABEL],
            registry=r,
        ).labels(**run)
        self._evicted = Counter(
            f"{p}trial_series_evicted",
            f"Per-trial series dropped to keep at most {self.max_trial_series} trials",
            [RUN_LABEL],
            registry=r,
        ).labels(**run)
        self._per_trial = {
            key: Gauge(
                f"{p}trial_{key}", f"Latest {key} of a trial", [RUN_LABEL, "trial", "space"],
                registry=r,
            )
            for key in PER_TRIAL_KEYS
        }

    def metric_names(self) -> list[str]:
        """Series names a scrape shows (sweep_results_total, sweep_epoch_seconds_bucket, ...).

        Includes per-trial gauges before any trial reported; leaves out the *_created samples.
        """
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        return sorted(
            family.name + suffix
            for family in self.registry.collect()
            for suffix in suffixes.get(family.type, ("",))
        )

    # ---- events -------------------------------------------------------------------------------
    def result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        self._results.inc()
        with self._rate_lock:
            self._result_times.append(time.monotonic())
        seconds = result.get("epoch_seconds")
        if _is_finite(seconds):
            self._epoch_seconds.observe(float(seconds))
        self._track_series(trial_id)
        for key, gauge in self._per_trial.items():
            value = result.get(key)
            if _is_finite(value):  # epochs without evaluation report NaN: keep the latest value
                gauge.labels(run=self.run_id, trial=trial_id, space=self.space).set(
                    float(value)
                )

    def started(self, trial: Any) -> None:
        final = self._final_state.pop(trial.trial_id, None)  # a restarted errored trial is live
        if final is not None:
            self._final_counts[final] -= 1
        self._live[trial.trial_id] = trial

    def finished(self, trial_id: str, state: str) -> None:
        previous = self._final_state.get(trial_id)
        if previous is not None:
            self._final_counts[previous] -= 1
        self._final_state[trial_id] = state
        self._final_counts[state] += 1
        self._live.pop(trial_id, None)
        if trial_id in self._series:
            self._finished[trial_id] = None

    def count_states(self, trials: Sequence[Any]) -> None:
        """Recount sweep_trials by state: finished trials by the counts their hooks keep, started
        ones by their Tune status, the rest of `trials` as pending.

        Runs at every trial event, so it walks the live trials only: walking all of them made a
        10,000-trial sweep's driver quadratic in the trial count."""
        counts = dict.fromkeys(TRIAL_STATES, 0)
        counts.update((state, n) for state, n in self._final_counts.items() if n)
        for t in self._live.values():
            counts[trial_state(str(t.status), t.last_result, t.config)] += 1
        counts["pending"] += max(0, len(trials) - len(self._final_state) - len(self._live))
        for state, n in counts.items():
            self._trials.labels(run=self.run_id, state=state).set(n)

    # ---- helpers ------------------------------------------------------------------------------
    def _results_per_second(self) -> float:
        now = time.monotonic()
        with self._rate_lock:
            while self._result_times and self._result_times[0] < now - self.rate_window_s:
                self._result_times.popleft()
            n = len(self._result_times)
        # Before a full window has passed, divide by the time actually observed.
        span = min(self.rate_window_s, max(now - self._started_at, 1e-3))
        return n / span

    def _track_series(self, trial_id: str) -> None:
        if trial_id in self._series:
            return
        self._series[trial_id] = None
        while len(self._series) > self.max_trial_series:
            # Oldest finished trial first; only when every tracked trial is live, the oldest live.
            victim = next(iter(self._finished)) if self._finished else next(iter(self._series))
            self._drop_series(victim)

    def _drop_series(self, trial_id: str) -> None:
        self._series.pop(trial_id, None)
        self._finished.pop(trial_id, None)
        for gauge in self._per_trial.values():
            gauge.remove(self.run_id, trial_id, self.space)
        self._evicted.inc()


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = [
    "EPOCH_SECONDS_BUCKETS",
    "PER_TRIAL_KEYS",
    "TRIAL_STATES",
    "SweepMetricModel",
    "trial_state",
]
