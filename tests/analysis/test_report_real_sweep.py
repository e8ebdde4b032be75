"""The report on a real smoke sweep (digits, tiny FCN, rank 1 / 8 / 32): the store the service
writes loads, every figure is a readable PNG the page references, and the invariants hold."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analysis import load
from analysis.bound import violations
from tests.analysis.test_report import check_report

pytest.importorskip("sweep.launch")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    storage = tmp_path_factory.mktemp("storage")
    done = subprocess.run(
        [sys.executable, "-m", "sweep.launch", "--space", "smoke", "--scale", "smoke",
         "--no-report", "--no-dashboard", "--metrics-port", "0", "--storage", str(storage),
         "--name", "smoke_run"],
        check=False, capture_output=True, text=True, timeout=150,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # the terminal: trial lines say where robust_acc was measured; no Ray / Tune chatter and no
    # traceback unless -v; the progress bar ends at every trial
    assert done.stdout.count("robust_acc(linf eps=0.05)=") == 3
    for noise in ("Traceback", " INFO ", " WARNING ", "Configuration for experiment"):
        assert noise not in done.stdout + done.stderr, noise
    assert "3/3" in done.stderr and "best RA" in done.stderr
    return storage / "smoke_run"


def test_report_builds_on_a_real_smoke_sweep(smoke_run):
    from analysis.report import write_report

    tables = load(smoke_run)
    assert tables.trials.collect().height >= 3
    assert "rank" in tables.hyperparameters
    assert violations(tables).collect().height == 0
    index = write_report(smoke_run, n_boot=20)
    figures = {p.stem for p in (index.parent / "figures").glob("*.png")}
    assert {"robust_vs_spectral_comp", "frontier_spectral_comp", "bound_vs_measured",
            "layers"} <= figures
    check_report(index, figures)
