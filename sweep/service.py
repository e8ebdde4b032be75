"""Run a checked launch: start (or join) Ray, write run.json, fit or restore, summarize."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from sweep.preflight import Launch

# Tune's per-trial JSON/CSV/TensorBoard loggers would write every result a second time;
# the Parquet store is the record. Set before Tune reads them.
_TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


@dataclass(frozen=True)
class SweepOutcome:
    run_dir: str
    store_dir: str
    planned: int
    finished: int  # trials with a terminal row in the store
    statuses: dict[str, int]
    wall_seconds: float
    dashboard_url: str | None

    @property
    def interrupted(self) -> bool:
        return self.finished < self.planned


def start_ray(launch: Launch) -> str | None:
    """Join a cluster (--address) or start an embedded one; returns the dashboard URL if any.

    A Ray already initialized in this process (tests, notebooks) is used as it is.
    """
    import ray

    if ray.is_initialized():
        return None
    options = launch.options
    # Quiet by default: the progress bar and trial lines say what matters; trial errors are in
    # the store. Worker output off also drops the actors' SystemExit traces at shutdown.
    quiet = {} if options.verbose else {"logging_level": logging.ERROR, "log_to_driver": False}
    if options.address is not None:
        _use_token_auth_if_available()
        context = ray.init(address=options.address, **quiet)
    else:
        extra = {}
        if options.ray_metrics_port:  # else Ray picks one, listed in its service-discovery file
            extra["_metrics_export_port"] = options.ray_metrics_port
        context = ray.init(
            num_cpus=os.cpu_count(),
            include_dashboard=options.dashboard,
            dashboard_host="127.0.0.1",  # never on a public interface unless the user asks
            **extra,
            **quiet,
        )
    url = getattr(context, "dashboard_url", None)
    return f"http://{url}" if url and not url.startswith("http") else url


def _use_token_auth_if_available() -> None:
    """Clusters started here have token authentication on; a driver joining one must send the
    token, which Ray only does in token mode. An explicit RAY_AUTH_MODE always wins."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(token_file):
        os.environ["RAY_AUTH_MODE"] = "token"


def run_sweep(
    launch: Launch, *, on_start: Any = None, extra_callbacks: list | None = None
) -> SweepOutcome:
    """Fit (or restore) the sweep. on_start(dashboard_url) is called once Ray is up;
    extra_callbacks (ray.tune.Callback) see every event beside the store (new runs only)."""
    for key, value in _TUNE_ENV.items():
        os.environ.setdefault(key, value)
    if not launch.options.verbose:
        # Tune's legacy reporter at verbose=0 prints nothing (the new one draws a config box)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    from sweep.tuner import build_tuner, restore_tuner

    start = time.monotonic()
    dashboard = start_ray(launch)
    if on_start is not None:
        on_start(dashboard)
    if launch.options.resume:
        tuner = restore_tuner(launch)
    else:
        launch.location.write_run_json(run_spec(launch))
        tuner = build_tuner(launch, extra_callbacks=extra_callbacks)
    tuner.fit()
    statuses = _statuses(launch)
    return SweepOutcome(
        run_dir=launch.location.run_dir,
        store_dir=launch.location.store_root,
        planned=launch.trial_count,
        finished=sum(statuses.values()),
        statuses=statuses,
        wall_seconds=time.monotonic() - start,
        dashboard_url=dashboard,
    )


def run_spec(launch: Launch) -> dict[str, Any]:
    """run.json: enough to resume the run and to label its results."""
    plan = launch.plan
    return {
        "run_id": launch.location.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "space": plan.space,
        "scale": plan.scale,
        "objective": plan.objective,
        "trial_count": launch.trial_count,
        "hyperparameters": plan.hyperparameters(),
        "fixed": dict(plan.fixed),
        "params": {k: p.describe() for k, p in plan.params.items()},
        "options": launch.options.to_dict(),
    }


def _statuses(launch: Launch) -> dict[str, int]:
    import pyarrow.compute as pc

    from sweep.store import StoreLayout

    layout = StoreLayout.at(launch.location.store_root)
    parts = layout.parts("trials")
    if not parts:
        return {}
    table = layout.read(parts[0], columns=["status"])
    counts = pc.value_counts(table.column("status")).to_pylist()
    return {c["values"]: c["counts"] for c in counts}
