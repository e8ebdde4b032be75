"""The environment a launch and the audit record: versions against the modules' own, the commit
against git, and a dirty checkout told apart from a clean one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from trainables.provenance import PACKAGES, code_version, environment

REPO = Path(__file__).resolve().parents[2]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], capture_output=True, text=True, check=True).stdout.strip()


def test_package_versions_are_the_imported_modules_own():
    packages = environment()["packages"]
    assert list(packages) == list(PACKAGES)
    assert packages["torch"] == torch.__version__
    assert packages["numpy"] == np.__version__
    assert packages["polars"] == pl.__version__


@needs_git
def test_the_commit_is_this_checkouts_head():
    if subprocess.run(["git", "-C", str(REPO), "rev-parse"], capture_output=True).returncode:
        pytest.skip("the tests run outside a git checkout")
    assert environment()["code"]["commit"] == git(REPO, "rev-parse", "HEAD")


@needs_git
def test_a_changed_tracked_file_makes_the_checkout_dirty(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-qm", "a")
    head = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "untracked.txt").write_text("results are not code\n")
    assert code_version(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_version(tmp_path) == {"commit": head, "dirty": True}


def test_outside_git_nothing_is_claimed(tmp_path):
    assert code_version(tmp_path) == {"commit": None, "dirty": None}
