"""bench/analysis_load.py on a small store: its writer follows the store schema and both engines
give the same answer (the timing itself is the bench's business, not a test's)."""

from __future__ import annotations

import subprocess
import sys

from tests.sweep.test_fault_tolerance import REPO


def test_the_bench_runs_on_todays_schema_and_both_answers_agree():
    child = subprocess.run(
        [sys.executable, "-m", "bench.analysis_load", "--rows", "20000", "--files", "2",
         "--repeat", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert "answers agree on 20 trials" in child.stdout, child.stdout
