"""Run a checked launch: start (or join) Ray, write run.json, fit or restore, summarize."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from sweep.embedded import LOOPBACK, loopback_only, record_session, stop_stale_sessions
from sweep.preflight import Launch, check_cluster_fits
from trainables.errors import SweepError
from trainables.provenance import environment

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
        try:
            context = ray.init(address=options.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SweepError(
                f"cannot join the Ray cluster at --address {options.address} ({reason}); "
                "check that it runs (ray status) and that its token is in ~/.ray/auth_token"
            ) from None
        check_cluster_fits(
            options, lambda: [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        )
    else:
        extra = {}
        if options.ray_metrics_port:  # else Ray picks one, listed in its service-discovery file
            extra["_metrics_export_port"] = options.ray_metrics_port
        for line in stop_stale_sessions():  # agents a SIGKILLed earlier driver left running
            print(line, flush=True)
        with loopback_only():  # every Ray server on 127.0.0.1 (sweep/embedded.py)
            context = ray.init(
                num_cpus=os.cpu_count(),
                include_dashboard=options.dashboard,
                dashboard_host=LOOPBACK,  # never on a public interface unless the user asks
                _node_ip_address=LOOPBACK,
                **extra,
                **quiet,
            )
        with contextlib.suppress(AttributeError, OSError):  # a record is a courtesy, not a need
            record_session(ray._private.worker._global_node.get_session_dir_path())
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
    """Fit the sweep (a resume fits the trials still to run, see sweep/resume.py).
    on_start(dashboard_url) is called once Ray is up; extra_callbacks (ray.tune.Callback) see
    every event beside the store."""
    for key, value in _TUNE_ENV.items():
        os.environ.setdefault(key, value)
    if not launch.options.verbose:
        # Tune's legacy reporter at verbose=0 prints nothing (the new one draws a config box)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    controller = logging.getLogger("ray.tune.execution.tune_controller")
    if not any(isinstance(f, OneLineTrialErrors) for f in controller.filters):
        controller.addFilter(OneLineTrialErrors())
    try:
        return _run_sweep(launch, on_start, extra_callbacks)
    finally:
        if launch.lock is not None:
            launch.lock.release()


def _run_sweep(launch: Launch, on_start: Any, extra_callbacks: list | None) -> SweepOutcome:
    from sweep.resume import resume_entries

    start = time.monotonic()
    resume = resume_entries(launch) if launch.options.resume else None
    if resume == []:  # every trial ended: only the store's final compaction may be missing
        dashboard = None
        _finish_store(launch)
    else:
        from sweep.tuner import build_tuner

        dashboard = start_ray(launch)
        if on_start is not None:
            on_start(dashboard)
        if resume is None:
            launch.location.write_run_json(run_spec(launch))
        build_tuner(launch, extra_callbacks=extra_callbacks, resume=resume).fit()
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


def _finish_store(launch: Launch) -> None:
    from sweep.store import ResultStore

    plan = launch.plan
    store = ResultStore(launch.location.store_root, run_id=launch.location.name,
                        hyperparameters=plan.hyperparameters())
    store.open()
    store.close()


class OneLineTrialErrors(logging.Filter):
    """Tune logs each failed trial attempt with its worker's whole traceback (50 lines for a full
    disk); the launcher shows one line per failure instead. The full traceback stays in the
    trial's error.txt, which Tune names on the next line, and in the Tune logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            record.msg = f"{record.getMessage()}: {lines[-1] if lines else type(error).__name__}"
            record.args = None
            record.exc_info, record.exc_text = None, None
        return True


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
        "environment": environment(),  # the launching process's; a resume keeps the first
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
