"""The sweep's own Prometheus metrics, exported by a Ray Tune callback that runs in the driver.

    cb = SweepMetrics(space="spectral_linf", run_id=run_id, port=9500)
    cb.start()                       # optional: fail early on a busy port; setup() starts it too
    print(cb.url)                    # http://127.0.0.1:9500/metrics
    Tuner(..., run_config=RunConfig(callbacks=[cb])).fit()   # stopped at experiment end

This module only wires Tune's hooks: what is counted is sweep/metrics_model.py (one
CollectorRegistry per callback), how it is served is sweep/metrics_endpoint.py.

Tune pickles the RunConfig (and so this callback) into the experiment directory; the pickled
state is only the constructor arguments, and an unpickled copy starts its own server in setup().
Counters restart from zero when a sweep is resumed, which Prometheus' rate() handles as a reset.
"""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback

from sweep._pickling import PicklesAsArguments
from sweep.metrics_endpoint import MetricsEndpoint
from sweep.metrics_model import (
    EPOCH_SECONDS_BUCKETS,
    METRIC_PREFIX,
    PER_TRIAL_KEYS,
    RUN_LABEL,
    TRIAL_STATES,
    SweepMetricModel,
    trial_state,
)
from trainables.errors import ConfigError

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


class SweepMetrics(PicklesAsArguments, Callback):
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
        self.model = SweepMetricModel(space, run_id, max_trial_series, rate_window_s)
        self.registry = self.model.registry
        self.endpoint = MetricsEndpoint(self.registry, host, port)
        self._last_state_refresh = 0.0

    @property
    def url(self) -> str | None:
        return self.endpoint.url

    def metric_names(self) -> list[str]:
        """Series names a scrape shows (see SweepMetricModel.metric_names)."""
        return self.model.metric_names()

    def start(self) -> str:
        """Start serving (idempotent) and return the URL. A busy port raises ConfigError."""
        return self.endpoint.start()

    def close(self) -> None:
        """Stop the server and free its port now (idempotent; also ends a linger)."""
        self.endpoint.close()

    # ---- Tune hooks ---------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self.start()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self._last_state_refresh >= _STATE_REFRESH_S:
            self._refresh_states(trials)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.model.started(trial)
        self._refresh_states(trials)

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.model.restores.inc()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.model.result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Tune calls this before it flips the status to TERMINATED, so classify as terminated.
        state = trial_state("TERMINATED", trial.last_result, trial.config)
        self.model.finished(trial.trial_id, state)
        self._refresh_states(trials)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.model.retries.inc()
        self._refresh_states(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.model.failures.inc()
        self.model.finished(trial.trial_id, "errored")
        self._refresh_states(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._refresh_states(trials)
        # Keep the final counts up long enough for one more Prometheus scrape.
        self.endpoint.linger(self.linger_s)

    def _refresh_states(self, trials: list) -> None:
        self._last_state_refresh = time.monotonic()
        self.model.count_states(trials)


__all__ = [
    "DEFAULT_LINGER_S",
    "DEFAULT_PORT",
    "EPOCH_SECONDS_BUCKETS",
    "METRIC_PREFIX",
    "PER_TRIAL_KEYS",
    "RUN_LABEL",
    "TRIAL_STATES",
    "SweepMetrics",
    "trial_state",
]
