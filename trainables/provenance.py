"""What produced a result: the code's commit and the versions of the libraries that compute it.

A launch writes this into run.json and the audit into its JSON, so a published number can be
traced to the exact code and libraries (an attack's strength or a float sum changes with them).
Only the process that calls it is described: on a cluster, worker nodes are expected to run the
same image as the head.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# The libraries whose version can move a number we report; distribution names, as pip sees them.
PACKAGES = ("torch", "numpy", "scipy", "pyautoattack", "ray", "optuna", "pyarrow", "polars")
_CHECKOUT = Path(__file__).resolve().parents[1]


def environment() -> dict[str, Any]:
    """{"python", "platform", "packages": {name: version or None}, "code": {"commit", "dirty"}}."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "code": code_version(),
    }


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def code_version(root: Path = _CHECKOUT) -> dict[str, Any]:
    """The checkout's HEAD commit and whether tracked files differ from it; both None when the code
    is not a git checkout (an installed wheel) or git is missing."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}
