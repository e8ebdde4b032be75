"""Every check made before Ray starts or a file is written: space, values, data, storage."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sweep.data_check import check_datasets
from sweep.lock import RunLock
from sweep.options import DEFAULT_METRICS_PORT, LaunchOptions
from sweep.rundir import RunLocation
from sweep.spaces import Plan, get_space
from trainables.errors import ConfigError

# Flags a resumed run takes from the command line; everything else comes from its run.json.
RUNTIME_FLAGS = (
    "storage",
    "name",
    "address",
    "metrics_port",
    "ray_metrics_port",
    "dashboard",
    "report",
    "max_concurrent",
    "dry_run",
    "resource_wait",
)
# Placement (and fault-handling) flags a resumed run may change; when not given, the run's saved
# values stand.
PLACEMENT_FLAGS = ("cpus_per_trial", "gpus_per_trial", "max_failures", "checkpoint_seconds")
# A reachable Ray head answers a TCP connect at once; an unreachable one must fail in seconds,
# not after ray.init's minutes of retries.
ADDRESS_PROBE_TIMEOUT_S = 5.0
RESOURCE_POLL_S = 5.0


@dataclass(frozen=True)
class Launch:
    """A checked launch: what to run and where."""

    options: LaunchOptions
    plan: Plan
    location: RunLocation
    lock: RunLock | None = None  # held from preflight until run_sweep ends (None: dry run)
    # The sweep's Prometheus endpoint, already bound (sweep.metrics_export.SweepMetrics) so no
    # other process can take the port between the check and the sweep; None when disabled.
    metrics: Any = None

    @property
    def trial_count(self) -> int:
        return self.plan.trial_count(self.options.search, self.options.num_samples)

    @property
    def num_samples(self) -> int:
        if self.options.num_samples is not None:
            return self.options.num_samples
        return self.plan.default_num_samples(self.options.search)


def prepare_launch(options: LaunchOptions, given: Collection[str] | None = None) -> Launch:
    """Raise ConfigError / DatasetNotFoundError / SweepError with one line on any bad input.

    given: the LaunchOptions fields set on the command line (None: those differing from the
    defaults); on --resume, a given flag that would change the run's plan is refused."""
    location = RunLocation(options.storage, options.run_name())
    if options.resume:
        location.check_resumable()
        options = _saved_options(location, options, given)
    plan = get_space(options.space).resolve(options.scale, options.trial_overrides())
    if not options.resume and not options.dry_run:
        location.check_new()
    if options.address is None:
        check_local_resources(options)
    elif not options.dry_run:
        check_address_reachable(options.address)
    if options.metrics_port not in (0, DEFAULT_METRICS_PORT) and not options.dry_run:
        check_port_free(options.metrics_port)  # cheap, before the datasets load
    check_datasets(plan)
    check_user_model(plan)
    lock = None if options.dry_run else _lock(location, options.resume)
    metrics = None
    if options.metrics_port and not options.dry_run:
        try:
            metrics = bind_metrics(options, plan.space, location.name)
        except BaseException:
            lock.release()
            raise
    return Launch(options, plan, location, lock=lock, metrics=metrics)


def _lock(location: RunLocation, resume: bool) -> RunLock:
    """Take the run directory's lock last (every cheap check passed), then check again under it:
    a launcher that held it may have created (or finished) the run since the checks above."""
    lock = RunLock.acquire(location)
    try:
        location.check_resumable() if resume else location.check_new()
    except BaseException:
        lock.release()
        raise
    return lock


def bind_metrics(options: LaunchOptions, space: str, run_id: str) -> Any:
    """Bind the sweep's endpoint now and hand it to the sweep (the tuner uses this object).
    The default port, when busy (another sweep on this host), moves to a free one; the launcher
    prints the one in use. An explicitly chosen busy port is bad input."""
    from sweep.metrics_export import SweepMetrics  # imports Ray Tune: only after cheap checks

    metrics = SweepMetrics(space=space, run_id=run_id, port=options.metrics_port)
    try:
        metrics.start()
    except ConfigError:
        if options.metrics_port != DEFAULT_METRICS_PORT:
            raise
        metrics = SweepMetrics(space=space, run_id=run_id, port=None)
        metrics.start()
    return metrics


def check_local_resources(options: LaunchOptions) -> None:
    """An embedded Ray has this machine's CPUs and GPUs; a trial asking for more never starts."""
    cpus = os.cpu_count() or 1
    if options.cpus_per_trial > cpus:
        raise ConfigError(
            f"--cpus-per-trial {options.cpus_per_trial:g} exceeds the {cpus} CPUs of this machine "
            "(embedded Ray); pass at most that, or --address of a cluster with larger nodes"
        )
    if options.gpus_per_trial > 0:
        gpus = local_gpu_count()
        if options.gpus_per_trial > gpus:
            raise ConfigError(
                f"--gpus-per-trial {options.gpus_per_trial:g} exceeds the {gpus} GPUs of this "
                "machine (embedded Ray); pass --gpus-per-trial 0, or --address of a GPU cluster"
            )


def local_gpu_count() -> int:
    """GPUs an embedded Ray would see: CUDA devices (CUDA_VISIBLE_DEVICES applies).

    Counted by torch in a child interpreter when this one has no torch: the driver keeps torch
    out (~230 MiB for the whole sweep; sweep/data_check.py)."""
    if "torch" in sys.modules:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    count = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
    child = subprocess.run([sys.executable, "-c", count], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


def check_address_reachable(address: str, timeout: float = ADDRESS_PROBE_TIMEOUT_S) -> None:
    """HOST:PORT must accept a TCP connection ('auto' is resolved and checked by ray.init)."""
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(
            f"--address {address} is not reachable ({reason}); check that the Ray head runs "
            "there (ray status on the head) and that this machine can reach its GCS port"
        ) from None


def check_cluster_fits(
    options: LaunchOptions,
    node_resources: Callable[[], Sequence[dict[str, float]]],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """One trial must fit on one alive node of the cluster, else Tune leaves it pending forever.
    node_resources() lists each alive node's total resources (ray.nodes()); it is polled for up
    to options.resource_wait seconds, while an autoscaler may add a node, then ConfigError."""
    need_cpu, need_gpu = options.cpus_per_trial, options.gpus_per_trial
    deadline = clock() + options.resource_wait
    while True:
        nodes = list(node_resources())
        if any(n.get("CPU", 0) >= need_cpu and n.get("GPU", 0) >= need_gpu for n in nodes):
            return
        if clock() >= deadline:
            break
        sleep(min(RESOURCE_POLL_S, max(0.0, deadline - clock())))
    cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    waited = f" after waiting {options.resource_wait:g} s" if options.resource_wait else ""
    raise ConfigError(
        f"a trial needs {need_cpu:g} CPUs and {need_gpu:g} GPUs on one node, but the cluster's "
        f"largest nodes have {cpus:g} CPUs and {gpus:g} GPUs{waited}; lower --cpus-per-trial / "
        "--gpus-per-trial, or on an autoscaling cluster pass --resource-wait SECONDS"
    )


def check_port_free(port: int) -> None:
    """The Prometheus endpoint binds 127.0.0.1:port; a busy port is bad input, found now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigError(
                f"--metrics-port {port} is in use on 127.0.0.1; pass another port, or 0 to disable"
            ) from None


def check_user_model(plan: Plan) -> None:
    """posthoc_audit: load the user's model, weights and data once, so a bad one fails here."""
    config = next(plan.corner_configs())
    if config.model_factory is not None:
        from trainables.posthoc import PosthocTrial

        PosthocTrial(config)


def _saved_options(
    location: RunLocation, cli: LaunchOptions, given: Collection[str] | None
) -> LaunchOptions:
    try:
        saved = dict(location.read_run_json()["options"])
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(
            f"cannot resume {location.run_dir}: run.json is unreadable ({err})"
        ) from None
    known = {f.name: f for f in dataclasses.fields(LaunchOptions)}
    saved = {k: v for k, v in saved.items() if k in known}
    if given is None:
        default = LaunchOptions()
        given = [k for k in known if getattr(cli, k) != getattr(default, k)]
    for key in sorted(set(given) - set(RUNTIME_FLAGS) - set(PLACEMENT_FLAGS) - {"resume"}):
        ours, theirs = _comparable(getattr(cli, key)), _comparable(saved.get(key))
        if ours != theirs:
            raise ConfigError(
                f"--resume keeps the run's plan, but --{key.replace('_', '-')} {ours!r} differs "
                f"from the run's {theirs!r}; drop the flag, or start a new run with another --name"
            )
    saved.update({k: getattr(cli, k) for k in RUNTIME_FLAGS})
    saved.update({k: getattr(cli, k) for k in PLACEMENT_FLAGS if k in given})
    saved["resume"] = True
    return LaunchOptions(**saved)


def _comparable(value: object) -> object:
    """run.json holds JSON: tuples came back as lists."""
    return json.loads(json.dumps(value, default=list))
