"""Every check made before Ray starts or a file is written: space, values, data, storage."""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass

from sweep.options import LaunchOptions
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
)


@dataclass(frozen=True)
class Launch:
    """A checked launch: what to run and where."""

    options: LaunchOptions
    plan: Plan
    location: RunLocation

    @property
    def trial_count(self) -> int:
        return self.plan.trial_count(self.options.search, self.options.num_samples)

    @property
    def num_samples(self) -> int:
        if self.options.num_samples is not None:
            return self.options.num_samples
        return self.plan.default_num_samples(self.options.search)


def prepare_launch(options: LaunchOptions) -> Launch:
    """Raise ConfigError / DatasetNotFoundError / SweepError with one line on any bad input."""
    location = RunLocation(options.storage, options.run_name())
    if options.resume:
        location.check_resumable()
        options = _saved_options(location, options)
    plan = get_space(options.space).resolve(options.scale, options.trial_overrides())
    if not options.resume and not options.dry_run:
        location.check_new()
    if options.metrics_port and not options.dry_run:
        check_port_free(options.metrics_port)
    check_datasets(plan)
    check_user_model(plan)
    return Launch(options, plan, location)


def check_port_free(port: int) -> None:
    """The Prometheus endpoint binds 127.0.0.1:port; a busy port is bad input, found now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigError(
                f"--metrics-port {port} is in use on 127.0.0.1; pass another port, or 0 to disable"
            ) from None


def check_datasets(plan: Plan) -> None:
    """Load each distinct data setting once (also checks class lists against the dataset)."""
    from trainables.data import load_dataset  # torch: only once the cheap checks have passed

    seen: set[tuple] = set()
    for config in plan.corner_configs():
        class_lists = {config.classes}
        if config.pretrain_classes is not None:
            class_lists.add(config.pretrain_classes)
        for classes in class_lists:
            key = (config.dataset, config.data_dir, config.n_train, config.n_test, classes)
            if key in seen:
                continue
            seen.add(key)
            load_dataset(
                config.dataset,
                data_dir=config.data_dir,
                n_train=config.n_train,
                n_test=config.n_test,
                classes=classes,
                seed=config.seed,
            )


def check_user_model(plan: Plan) -> None:
    """posthoc_audit: load the user's model, weights and data once, so a bad one fails here."""
    config = next(plan.corner_configs())
    if config.model_factory is not None:
        from trainables.posthoc import PosthocTrial

        PosthocTrial(config)


def _saved_options(location: RunLocation, cli: LaunchOptions) -> LaunchOptions:
    try:
        saved = dict(location.read_run_json()["options"])
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(
            f"cannot resume {location.run_dir}: run.json is unreadable ({err})"
        ) from None
    known = {f.name for f in dataclasses.fields(LaunchOptions)}
    saved = {k: v for k, v in saved.items() if k in known}
    saved.update({k: getattr(cli, k) for k in RUNTIME_FLAGS})
    saved["resume"] = True
    return LaunchOptions(**saved)
