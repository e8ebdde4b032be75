"""LaunchOptions: every launcher flag, with defaults and validation in one place.

Pure Python (no Ray): the launcher builds and checks these before anything starts.
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


def default_storage() -> str:
    return os.path.abspath("runs")


@dataclass(frozen=True)
class LaunchOptions:
    space: str = "spectral_linf"
    scale: str = "cpu"
    dataset: str | None = None  # overrides the space's dataset
    data_dir: str | None = None
    trial_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # --set KEY=VALUE
    num_samples: int | None = None  # None: the space's default for the search
    search: str = "grid"
    scheduler: str = "fifo"
    max_concurrent: int | None = None  # None: as many as the cluster's resources allow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    resource_wait: float = 0.0  # --address: seconds to wait for a node that fits one trial
    max_failures: int = 2  # retries of a failed trial, each from its last checkpoint
    storage: str = dataclasses.field(default_factory=default_storage)
    name: str | None = None  # None: <space>-<scale>-<timestamp>
    resume: bool = False
    address: str | None = None  # None: an embedded local Ray; "auto" or HOST:PORT: a cluster
    dry_run: bool = False
    metrics_port: int = DEFAULT_METRICS_PORT  # 0 disables the Prometheus endpoint
    ray_metrics_port: int = 0  # embedded Ray's own metrics export; 0: Ray picks
    dashboard: bool = True  # embedded Ray only
    report: bool = True
    verbose: bool = False  # Ray's and Tune's own log lines and worker output on the terminal

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
