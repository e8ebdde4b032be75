"""The sweep's own Prometheus metrics, exported by a Ray Tune callback that runs in the driver.

    cb = SweepMetrics(space="spectral_linf", run_id=run_id, port=9500)
    cb.start()                       # optional: fail early on a busy port; setup() starts it too
    print(cb.url)                    # http://127.0.0.1:9500/metrics
    Tuner(..., run_config=RunConfig(callbacks=[cb])).fit()   # stopped at experiment end

Each callback owns a CollectorRegistry (not prometheus_client's global one), so several sweeps can
run one after another in one process (tests) without duplicate-metric errors. The HTTP server
binds to 127.0.0.1 unless `host` says otherwise (DESIGN.md, safety stance).

Tune pickles the RunConfig (and so this callback) into the experiment directory; the pickled
state is only the constructor arguments, and an unpickled copy starts its own server in setup().
Counters restart from zero when a sweep is resumed, which Prometheus' rate() handles as a reset.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from ray.tune import Callback

from trainables.errors import ConfigError

logger = logging.getLogger(__name__)

METRIC_PREFIX = "sweep_"
TRIAL_STATES: tuple[str, ...] = (
    "pending",
    "running",
    "completed",
    "errored",
    "diverged",
    "stopped",
)
# Result keys (trainables.schema.RESULT_SCALARS) exported per trial as sweep_trial_<key>.
PER_TRIAL_KEYS: tuple[str, ...] = ("robust_acc", "clean_acc", "neuron_comp", "spectral_comp")
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
DEFAULT_PORT = 9500
DEFAULT_HOST = "127.0.0.1"
# Per-trial series are bounded: a paper-scale sweep has thousands of trials and every label set
# is a time series Prometheus keeps; beyond this many trials the oldest finished ones are dropped.
DEFAULT_MAX_TRIAL_SERIES = 200
DEFAULT_RATE_WINDOW_S = 60.0
# After the experiment ends the endpoint stays up this long (one default Prometheus scrape
# interval) so the final counts get scraped; it never delays process exit (daemon threads), and
# a new SweepMetrics asking for the same port takes the port over at once.
DEFAULT_LINGER_S = 15.0
_STATE_REFRESH_S = 0.5  # on_step_end runs many times a second; recount states at most this often

# Endpoints lingering after their experiment, by (host, port): a new sweep on that port ends them.
_lingering: dict[tuple[str, int], SweepMetrics] = {}
_lingering_lock = threading.Lock()

# Ray Tune Trial.status values -> our state label (terminal ones are refined by trial_state()).
_RAY_STATUS = {"PENDING": "pending", "PAUSED": "pending", "RUNNING": "running", "ERROR": "errored"}


def trial_state(
    status: str, last_result: dict[str, Any] | None, config: dict[str, Any] | None
) -> str:
    """One of TRIAL_STATES for a Ray Tune trial status, its last result and its config.

    A TERMINATED trial is "diverged" when its last result says so, "stopped" when it ended before
    the configured number of epochs (a scheduler or stopper ended it, not the trial's own early
    stopping: early_stopped in its last result), else "completed".
    """
    if status != "TERMINATED":
        return _RAY_STATUS.get(status, "pending")
    last_result = last_result or {}
    if last_result.get("diverged"):
        return "diverged"
    epochs = (config or {}).get("epochs")
    done = last_result.get("iteration", last_result.get("training_iteration"))
    if (isinstance(epochs, int) and isinstance(done, int) and done < epochs
            and not last_result.get("early_stopped")):
        return "stopped"
    return "completed"


class SweepMetrics(Callback):
    """Ray Tune callback serving the sweep's metrics over HTTP in Prometheus text format.

    Hooks (all called in the Tune driver loop): setup starts the server, on_trial_result counts
    results and updates per-trial gauges, on_trial_start/complete/error/recover and (throttled)
    on_step_end recount trial states, on_experiment_end recounts once more and stops the server.

    port=None binds an ephemeral free port (tests); read `.url` after start(). Port 0 is the
    launcher's "disabled" value and is rejected here: do not construct the callback then.
    linger_s keeps serving that long after the experiment ends (a daemon timer, so it never
    delays process exit), letting a last scrape see the final counts; close() stops at once, and
    so does a later SweepMetrics that starts on the same port.
    """

    def __init__(
        self,
        space: str,
        run_id: str,
        port: int | None = DEFAULT_PORT,
        host: str = DEFAULT_HOST,
        max_trial_series: int = DEFAULT_MAX_TRIAL_SERIES,
        rate_window_s: float = DEFAULT_RATE_WINDOW_S,
        linger_s: float = DEFAULT_LINGER_S,
    ) -> None:
        if port is not None and (
            not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535
        ):
            raise ConfigError(
                f"metrics port must be an integer in 1..65535 (or None for a free port), but got "
                f"{port!r}; 0 disables the endpoint: leave the callback out instead"
            )
        if not isinstance(max_trial_series, int) or max_trial_series < 1:
            raise ConfigError(
                f"max_trial_series must be an integer >= 1, but got {max_trial_series!r}"
            )
        if not rate_window_s > 0:
            raise ConfigError(f"rate_window_s must be > 0 seconds, but got {rate_window_s!r}")
        if not linger_s >= 0:
            raise ConfigError(f"linger_s must be >= 0 seconds, but got {linger_s!r}")
        if not host:
            raise ConfigError("metrics host must be a host name or address, but got ''")
        self._args = {
            "space": space,
            "run_id": run_id,
            "port": port,
            "host": host,
            "max_trial_series": max_trial_series,
            "rate_window_s": rate_window_s,
            "linger_s": linger_s,
        }
        self.space = space
        self.run_id = run_id
        self.port = port
        self.host = host
        self.max_trial_series = max_trial_series
        self.rate_window_s = float(rate_window_s)
        self.linger_s = float(linger_s)
        self.url: str | None = None
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self._server_lock = threading.Lock()  # close() may run in the linger timer's thread
        self._linger_timer: threading.Timer | None = None
        self._result_times: deque[float] = deque()
        self._rate_lock = threading.Lock()
        self._started_at = time.monotonic()
        self._last_state_refresh = 0.0
        self._final_state: dict[str, str] = {}  # trial_id -> state fixed by complete/error hooks
        self._series: OrderedDict[str, None] = OrderedDict()  # trials with gauges, oldest first
        self._finished: OrderedDict[str, None] = OrderedDict()  # of those, finished, oldest first
        self._build_metrics()

    # ---- metric definitions -------------------------------------------------------------------
    def _build_metrics(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = METRIC_PREFIX
        info = Gauge(
            f"{p}info", "Constant 1; labels name the sweep", ["run_id", "space"], registry=r
        )
        info.labels(run_id=self.run_id, space=self.space).set(1)
        self._trials = Gauge(f"{p}trials", "Trials by state", ["state"], registry=r)
        for state in TRIAL_STATES:
            self._trials.labels(state=state).set(0)
        self._results = Counter(f"{p}results", "Results reported by all trials", registry=r)
        rate = Gauge(
            f"{p}results_per_second",
            f"Results per second over the last {self.rate_window_s:g} s",
            registry=r,
        )
        rate.set_function(self._results_per_second)
        self._epoch_seconds = Histogram(
            f"{p}epoch_seconds",
            "Duration of one trial epoch (result epoch_seconds)",
            buckets=EPOCH_SECONDS_BUCKETS,
            registry=r,
        )
        self._retries = Counter(
            f"{p}trial_retries", "Trial failures that Tune retries (on_trial_recover)", registry=r
        )
        self._restores = Counter(
            f"{p}trial_restores", "Trials restored from a checkpoint (on_trial_restore)", registry=r
        )
        self._failures = Counter(
            f"{p}trial_failures", "Trials that failed for good (on_trial_error)", registry=r
        )
        self._evicted = Counter(
            f"{p}trial_series_evicted",
            f"Per-trial series dropped to keep at most {self.max_trial_series} trials",
            registry=r,
        )
        self._per_trial = {
            key: Gauge(
                f"{p}trial_{key}", f"Latest {key} of a trial", ["trial", "space"], registry=r
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

    # ---- HTTP server --------------------------------------------------------------------------
    def start(self) -> str:
        """Start serving (idempotent) and return the URL. A busy port raises ConfigError."""
        if self._server is None:
            if self.port is not None:
                with _lingering_lock:
                    previous = _lingering.pop((self.host, self.port), None)
                if previous is not None:
                    previous.close()
            try:
                server, thread = start_http_server(
                    self.port or 0, addr=self.host, registry=self.registry
                )
            except OSError as err:
                raise ConfigError(
                    f"metrics endpoint cannot bind {self.host}:{self.port} ({err.strerror}); "
                    "pass another --metrics-port, or 0 to disable it"
                ) from err
            self._server, self._server_thread = server, thread
            bound_port = server.server_port
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.url = f"http://{host}:{bound_port}/metrics"
            logger.info("sweep metrics at %s", self.url)
        return self.url

    def close(self) -> None:
        """Stop the server and free its port now (idempotent; also ends a linger)."""
        with self._server_lock:
            if self._linger_timer is not None:
                self._linger_timer.cancel()
                self._linger_timer = None
            server, self._server = self._server, None
            if server is not None:
                with _lingering_lock:
                    key = (self.host, server.server_port)
                    if _lingering.get(key) is self:
                        del _lingering[key]
                server.shutdown()
                server.server_close()
                if self._server_thread is not None:
                    self._server_thread.join(timeout=5)
            self._server_thread = None

    # Only the constructor arguments travel: locks, registry and server are rebuilt on unpickle.
    def __getstate__(self) -> dict[str, Any]:
        return dict(self._args)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    # ---- Tune hooks ---------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self.start()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self._last_state_refresh >= _STATE_REFRESH_S:
            self._refresh_states(trials)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._final_state.pop(trial.trial_id, None)  # a restarted errored trial is live again
        self._refresh_states(trials)

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._restores.inc()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self._results.inc()
        with self._rate_lock:
            self._result_times.append(time.monotonic())
        seconds = result.get("epoch_seconds")
        if _is_finite(seconds):
            self._epoch_seconds.observe(float(seconds))
        self._track_series(trial.trial_id)
        for key, gauge in self._per_trial.items():
            value = result.get(key)
            if _is_finite(value):  # epochs without evaluation report NaN: keep the latest value
                gauge.labels(trial=trial.trial_id, space=self.space).set(float(value))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Tune calls this before it flips the status to TERMINATED, so classify as terminated.
        self._final_state[trial.trial_id] = trial_state(
            "TERMINATED", trial.last_result, trial.config
        )
        self._mark_finished(trial.trial_id)
        self._refresh_states(trials)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._retries.inc()
        self._refresh_states(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._failures.inc()
        self._final_state[trial.trial_id] = "errored"
        self._mark_finished(trial.trial_id)
        self._refresh_states(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._refresh_states(trials)
        if self.linger_s > 0 and self._server is not None:
            # Keep the final counts up long enough for one more Prometheus scrape.
            with _lingering_lock:
                _lingering[(self.host, self._server.server_port)] = self
            self._linger_timer = threading.Timer(self.linger_s, self.close)
            self._linger_timer.daemon = True
            self._linger_timer.start()
        else:
            self.close()

    # ---- helpers ------------------------------------------------------------------------------
    def _refresh_states(self, trials: list) -> None:
        self._last_state_refresh = time.monotonic()
        counts = dict.fromkeys(TRIAL_STATES, 0)
        for t in trials:
            state = self._final_state.get(t.trial_id)
            if state is None:
                state = trial_state(str(t.status), t.last_result, t.config)
            counts[state] += 1
        for state, n in counts.items():
            self._trials.labels(state=state).set(n)

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

    def _mark_finished(self, trial_id: str) -> None:
        if trial_id in self._series:
            self._finished[trial_id] = None

    def _drop_series(self, trial_id: str) -> None:
        self._series.pop(trial_id, None)
        self._finished.pop(trial_id, None)
        for gauge in self._per_trial.values():
            gauge.remove(trial_id, self.space)
        self._evicted.inc()


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = [
    "DEFAULT_LINGER_S",
    "DEFAULT_PORT",
    "PER_TRIAL_KEYS",
    "TRIAL_STATES",
    "SweepMetrics",
    "trial_state",
]
