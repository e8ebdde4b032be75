"""Spaces the sweep tests run, registered like any user space (one file, `register`).

Also a launcher entry point with these spaces loaded, for tests that run the CLI as a process:
    python -m tests.sweep.spaces_for_tests --space test_long --scale smoke ...
"""

from __future__ import annotations

import sys

from sweep.spaces import Cases, Grid, Scale, Space, register
from sweep.spaces._registry import _SPACES
from sweep.spaces._scales import SMOKE

_BASE = {k: v for k, v in SMOKE.items() if k not in ("lr", "dataset")}
_ALL_SCALES = ("smoke", "cpu", "paper")
MISSING_DATA_DIR = "/nonexistent/sweep-test-data"

# One ordinary trial, one dense baseline, one that diverges (lr 1e3: NaN loss in epoch 1), one
# that raises in every attempt (its dataset's files are missing where the trial runs).
FAULTS = Cases(
    (
        {"compression": "rank", "rank": 8, "lr": 0.05, "dataset": "digits"},
        {"compression": "none", "lr": 0.05, "dataset": "digits"},
        {"compression": "none", "lr": 1000.0, "dataset": "digits"},
        {
            "compression": "none",
            "lr": 0.05,
            "dataset": "fashion_mnist",
            "data_dir": MISSING_DATA_DIR,
        },
    )
)


def _register(space: Space) -> None:
    if space.name not in _SPACES:
        register(space)


_register(
    Space(
        name="test_faults",
        description="test: completed, diverged and errored trials in one sweep",
        fixed={**_BASE, "norms": ("linf", "l2")},
        scales={s: Scale(params={"knob": FAULTS}) for s in _ALL_SCALES},
    )
)

# Long enough to interrupt: 4 trials x 5 epochs of the smoke model.
_register(
    Space(
        name="test_long",
        description="test: a few multi-epoch trials to interrupt and resume",
        fixed={**SMOKE, "epochs": 5, "compression": "rank", "rank": 8},
        scales={s: Scale(params={"seed": Grid((0, 1, 2, 3))}) for s in _ALL_SCALES},
    )
)


def launch_test_long(storage: str, *extra: str) -> list[str]:
    """The command line that runs test_long through the launcher into STORAGE/run, quietly."""
    return [
        sys.executable, "-m", "tests.sweep.spaces_for_tests", "--space", "test_long",
        "--scale", "smoke", "--storage", str(storage), "--name", "run",
        "--metrics-port", "0", "--no-report", *extra,
    ]


if __name__ == "__main__":
    from sweep.launch import main

    sys.exit(main(sys.argv[1:]))
