"""LaunchOptions: every launcher flag, with defaults, help text and validation in one place.

Pure Python (no Ray): the launcher builds and checks these before anything starts. Each field is
one flag of `python -m sweep.launch` (--field-name; a bool that defaults to True becomes
--no-field-name); sweep/launch.py derives its parser from the fields and their `help` metadata.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from trainables.errors import ConfigError

SEARCHES = ("grid", "random", "optuna")
SCHEDULERS = ("fifo", "asha")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:(\d{1,5})$")
DEFAULT_METRICS_PORT = 9500
# A trial checkpoints at most this often (and always at its final epoch): a failure recomputes at
# most ~10 s of a trial's work, while a checkpoint costs ~15-20 ms on a local disk and far more on
# remote storage, plus the driver's work per checkpoint (Tune registering it, keep_checkpoints
# deleting old ones). 0 checkpoints every epoch.
DEFAULT_CHECKPOINT_SECONDS = 10.0


STORAGE_DEFAULT = "runs"  # relative to the working directory; made absolute


def default_storage() -> str:
    return os.path.abspath(STORAGE_DEFAULT)


def _flag_field(default: Any = dataclasses.MISSING, *, help: str | None = None, **flag: Any) -> Any:
    """A LaunchOptions field with the flag's help text (and any other argparse settings, e.g.
    choices, metavar, flag) as metadata."""
    kwargs: dict[str, Any] = {"metadata": {"help": help, **flag}}
    if callable(default):
        kwargs["default_factory"] = default
    else:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


@dataclass(frozen=True)
class LaunchOptions:
    space: str = _flag_field("spectral_linf", help="named space (see --list-spaces)")
    scale: str = _flag_field("cpu", help="smoke | cpu | paper (default: cpu)")
    dataset: str | None = _flag_field(None, help="override the space's dataset")
    data_dir: str | None = _flag_field(None, help="directory holding the dataset's files")
    trial_options: dict[str, Any] = _flag_field(
        dict,
        flag="--set",
        metavar="OPTION=VALUE",
        help="fix a trial option for every trial, e.g. --set epochs=2 "
        "--set eps_linf=[0.01,0.03] (value as JSON, else a string)",
    )
    num_samples: int | None = _flag_field(
        None, help="grid: repeats of the grid; random/optuna: number of trials"
    )  # None: the space's default for the search
    search: str = _flag_field("grid", choices=SEARCHES)
    scheduler: str = _flag_field(
        "fifo", choices=SCHEDULERS, help="asha stops trials early on robust_acc"
    )
    max_concurrent: int | None = _flag_field(
        None, help="most trials running at once"
    )  # None: as many as the cluster's resources allow
    cpus_per_trial: float = _flag_field(1.0)
    gpus_per_trial: float = _flag_field(0.0, help="fractional allowed, e.g. 0.5")
    resource_wait: float = _flag_field(
        0.0,
        metavar="SECONDS",
        help="--address: wait this long for a node that fits one trial (an autoscaling cluster "
        "adds it), then exit 2; default 0: exit 2 at once",
    )
    max_failures: int = _flag_field(
        2, help="retries of a failing trial, each from its last checkpoint"
    )
    checkpoint_seconds: float = _flag_field(
        DEFAULT_CHECKPOINT_SECONDS,
        metavar="SECONDS",
        help="a trial checkpoints once this much time passed since its last checkpoint, and at "
        f"its final epoch (default {DEFAULT_CHECKPOINT_SECONDS:g}; 0: every epoch)",
    )
    storage: str = _flag_field(
        default_storage,
        help="runs directory (made absolute) or URI, e.g. s3://bucket/runs",
    )
    name: str | None = _flag_field(
        None, help="run name; the run directory is <storage>/<name>"
    )  # None: <space>-<scale>-<timestamp>
    resume: bool = _flag_field(False, help="continue the run --name")
    address: str | None = _flag_field(
        None, help="'auto' or HOST:PORT of an existing Ray cluster"
    )  # None: an embedded local Ray
    dry_run: bool = _flag_field(False, help="print the trial plan, start nothing")
    metrics_port: int = _flag_field(
        DEFAULT_METRICS_PORT, help="Prometheus endpoint on 127.0.0.1 (0 disables)"
    )
    ray_metrics_port: int = _flag_field(
        0,
        help="embedded Ray's own Prometheus export port (default 0: Ray picks one and "
        "lists it in /tmp/ray/prom_metrics_service_discovery.json)",
    )
    dashboard: bool = _flag_field(True, help="embedded Ray without dashboard")  # --no-dashboard
    report: bool = _flag_field(True, help="skip the report at the end")  # --no-report
    verbose: bool = _flag_field(
        False, short="-v", help="show Ray's and Tune's own log lines and the trials' worker output"
    )

    def __post_init__(self) -> None:
        _one_of("search", self.search, SEARCHES)
        _one_of("scheduler", self.scheduler, SCHEDULERS)
        for name in ("num_samples", "max_concurrent"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"--{_flag(name)} must be an integer >= 1, but got {value!r}")
        if not (math.isfinite(self.cpus_per_trial) and self.cpus_per_trial > 0):
            raise ConfigError(f"--cpus-per-trial must be > 0, but got {self.cpus_per_trial}")
        if not (math.isfinite(self.gpus_per_trial) and self.gpus_per_trial >= 0):
            raise ConfigError(f"--gpus-per-trial must be >= 0, but got {self.gpus_per_trial}")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise ConfigError(
                f"--gpus-per-trial above 1 must be whole, but got {self.gpus_per_trial}"
            )
        if not (math.isfinite(self.resource_wait) and self.resource_wait >= 0):
            raise ConfigError(
                f"--resource-wait must be seconds >= 0, but got {self.resource_wait}"
            )
        if not isinstance(self.max_failures, int) or self.max_failures < 0:
            raise ConfigError(
                f"--max-failures must be an integer >= 0, but got {self.max_failures!r}"
            )
        if not (math.isfinite(self.checkpoint_seconds) and self.checkpoint_seconds >= 0):
            raise ConfigError(
                f"--checkpoint-seconds must be seconds >= 0, but got {self.checkpoint_seconds}"
            )
        for name in ("metrics_port", "ray_metrics_port"):
            port = getattr(self, name)
            if not (isinstance(port, int) and 0 <= port <= 65535):
                raise ConfigError(f"--{_flag(name)} must be in 0..65535, but got {port!r}")
        if self.name is not None and not _NAME.match(self.name):
            raise ConfigError(
                f"--name must be letters, digits, '.', '_' or '-' (max 128), but got {self.name!r}"
            )
        if self.resume and self.name is None:
            raise ConfigError("--resume needs --name NAME of the run to resume (see --storage)")
        if self.address is not None and self.address != "auto":
            match = _HOST_PORT.match(self.address)
            if not match or not 0 < int(match.group(1)) <= 65535:
                raise ConfigError(
                    f"--address must be 'auto' or HOST:PORT, but got {self.address!r}"
                )
        if "://" not in self.storage and not os.path.isabs(self.storage):
            raise ConfigError(
                f"--storage must be an absolute path or a URI, but got {self.storage!r}"
            )

    def run_name(self) -> str:
        return self.name or f"{self.space}-{self.scale}-{time.strftime('%Y%m%d-%H%M%S')}"

    def threads(self) -> int:
        return max(1, int(self.cpus_per_trial))

    def device(self) -> str:
        return "cuda" if self.gpus_per_trial > 0 else "cpu"

    def trial_overrides(self) -> dict[str, Any]:
        """Fixed TrialConfig values the flags impose on every trial of the space."""
        overrides: dict[str, Any] = {
            **{k: tuple(v) if isinstance(v, list) else v for k, v in self.trial_options.items()},
            "threads": self.threads(),
            "device": self.device(),
        }
        if self.dataset is not None:
            overrides["dataset"] = self.dataset
        if self.data_dir is not None:
            overrides["data_dir"] = self.data_dir
        return overrides

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"--{_flag(name)} must be one of {list(allowed)}, but got {value!r}")


def _flag(name: str) -> str:
    return name.replace("_", "-")
