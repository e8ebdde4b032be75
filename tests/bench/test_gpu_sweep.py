"""bench/gpu_sweep.py without a GPU (CI, this machine): exit 2, one line, nothing written."""

from __future__ import annotations

import subprocess
import sys

from tests.sweep.test_fault_tolerance import REPO


def test_without_gpu_exits_2_with_one_line_and_writes_nothing(tmp_path):
    no_tools = tmp_path / "bin"  # a PATH without nvidia-smi, also on a GPU machine
    no_tools.mkdir()
    out = tmp_path / "out"
    child = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_sweep.py"), "--out", str(out)],
        capture_output=True, text=True, env={"PATH": str(no_tools)}, cwd=REPO, timeout=60,
        check=False,
    )
    assert child.returncode == 2
    assert child.stdout == ""
    lines = child.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a CUDA GPU" in lines[0], child.stderr
    assert not out.exists()
