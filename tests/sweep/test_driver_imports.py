"""The sweep driver never imports torch: it plans, validates and records trials by name only, and
torch alone is ~230 MiB of driver RSS (bench/driver_memory.py). Checked in a fresh interpreter,
since this test process may have imported torch already."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.sweep.test_fault_tolerance import REPO

# What `python -m sweep.launch` imports to plan and run a sweep, then the launcher's planning path
# (space, values, dataset check, GPU count) on a dry run, and one missing dataset: still a
# one-line error.
DRIVER = """
import json, sys
import sweep.launch, sweep.service, sweep.tuner, sweep.store, sweep.trim, sweep.tune_files
import sweep.metrics_export, sweep.progress
from sweep.options import LaunchOptions
from sweep.preflight import prepare_launch
from trainables.errors import ConfigError

launch = prepare_launch(LaunchOptions(space="smoke", scale="smoke", dry_run=True, metrics_port=0))
try:
    prepare_launch(LaunchOptions(space="smoke", scale="smoke", dry_run=True, metrics_port=0,
                                 dataset="fashion_mnist", data_dir="/nonexistent/fmnist"))
    error = None
except Exception as err:
    error = type(err).__name__
try:  # counts this machine's GPUs; refused where there are none
    prepare_launch(LaunchOptions(space="smoke", scale="smoke", dry_run=True, metrics_port=0,
                                 gpus_per_trial=0.5))
except ConfigError:
    pass
print(json.dumps({"trials": launch.trial_count, "error": error,
                  "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")[:5]}))
"""


def test_driver_plans_and_checks_datasets_without_importing_torch():
    child = subprocess.run(
        [sys.executable, "-c", DRIVER], cwd=REPO, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout.strip().splitlines()[-1])
    assert seen["trials"] > 0
    assert seen["error"] == "DatasetNotFoundError"
    assert seen["torch"] == [], f"the driver imported {seen['torch']}"
