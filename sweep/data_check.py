"""The preflight's dataset check: load every data setting a plan uses once, before Ray starts.

Loading imports torch and keeps the arrays in a per-process cache (trainables/data/_cache.py). The
driver never trains, so a driver that has not imported torch runs the loads in a child
interpreter (child_main, settings as JSON on stdin) and stays without both:
~230 MiB of torch plus the dataset for the whole sweep (bench/driver_memory.py). The child
reports a bad setting as the error's class name and one-line message, raised again here. A
process that already has torch (a test, a notebook) loads in-process and saves the child's start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from sweep.spaces import Plan
from trainables import errors

BAD_INPUT = 2  # the child's exit code for a SweepError; its stdout is [class name, message]
_CHILD = "import sys; from sweep.data_check import child_main; sys.exit(child_main())"


def check_datasets(plan: Plan) -> None:
    """Raise the loader's SweepError (DatasetNotFoundError, ConfigError) for a bad setting."""
    settings = data_settings(plan)
    if "torch" in sys.modules:
        load_all(settings)
        return
    # The child finds this checkout the way this process did (python -m from the repo, PYTHONPATH).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(settings), capture_output=True, text=True, env=env, check=False,
    )
    if child.returncode == BAD_INPUT:
        name, message = json.loads(child.stdout.splitlines()[-1])  # the last line is ours
        error = getattr(errors, name, None)
        if not (isinstance(error, type) and issubclass(error, errors.SweepError)):
            error = errors.SweepError
        raise error(message)
    if child.returncode != 0:  # a bug, not bad input: show the child's traceback
        raise RuntimeError(f"the dataset check failed in its child process:\n{child.stderr}")


def data_settings(plan: Plan) -> list[dict[str, Any]]:
    """Each distinct (dataset, data_dir, sizes, classes) of the plan once, as JSON-able dicts."""
    settings: list[dict[str, Any]] = []
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
            settings.append({
                "name": config.dataset, "data_dir": config.data_dir, "n_train": config.n_train,
                "n_test": config.n_test, "classes": None if classes is None else list(classes),
                "seed": config.seed,
            })
    return settings


def load_all(settings: list[dict[str, Any]]) -> None:
    from trainables.data import load_dataset

    for s in settings:
        classes = None if s["classes"] is None else tuple(s["classes"])
        load_dataset(s["name"], data_dir=s["data_dir"], n_train=s["n_train"],
                     n_test=s["n_test"], classes=classes, seed=s["seed"])


def child_main() -> int:
    try:
        load_all(json.load(sys.stdin))
    except errors.SweepError as err:
        print(json.dumps([type(err).__name__, str(err)]))
        return BAD_INPUT
    return 0
