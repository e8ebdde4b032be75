"""The launcher CLI: every bad input exits 2 with one line on stderr and writes nothing."""

from __future__ import annotations

import math
import socket
import subprocess
import sys

from sweep import launch
from sweep.launch import main
from sweep.spaces import get_space
from tests.sweep.test_fault_tolerance import REPO

QUIET = ["--metrics-port", "0", "--no-dashboard", "--no-report"]


def run_main(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def bad_inputs(tmp_path):
    storage = str(tmp_path / "runs")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    base = ["--storage", storage, "--name", "r", "--scale", "smoke", "--space", "smoke", *QUIET]
    return {
        "unknown space": [*base, "--space", "spectral_lnf"],
        "unknown scale": [*base, "--scale", "huge"],
        "unknown search": [*base, "--search", "bayes"],
        "bad sample count": [*base, "--num-samples", "0"],
        "not a number": [*base, "--num-samples", "many"],
        "negative cpus": [*base, "--cpus-per-trial", "-1"],
        "rank above width": [*base, "--set", "width=4"],
        "negative eps": [*base, "--set", "eps_linf=[0.01,-0.02]"],
        "unknown trial option": [*base, "--set", "widht=64"],
        "missing dataset": [
            *base,
            "--dataset",
            "fashion_mnist",
            "--data-dir",
            str(tmp_path / "no"),
        ],
        "dataset without default location": [*base, "--dataset", "cifar10"],
        "storage not writable": [*base, "--storage", str(a_file / "runs")],
        "relative name escape": [*base, "--name", "../up"],
        "resume of nothing": [*base, "--resume"],
        "bad address": [*base, "--address", "localhost"],
    }


def test_every_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    for what, argv in bad_inputs(tmp_path).items():
        code, out, err = run_main(capsys, argv)
        assert code == 2, (what, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, err)
        assert not (tmp_path / "runs").exists(), what


def test_busy_metrics_port_and_existing_run_are_refused(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        argv = [
            "--space",
            "smoke",
            "--scale",
            "smoke",
            "--storage",
            str(tmp_path),
            "--name",
            "r",
            "--metrics-port",
            str(port),
        ]
        code, _, err = run_main(capsys, argv)
    assert code == 2 and "in use" in err and not (tmp_path / "r").exists()
    (tmp_path / "r").mkdir()
    code, _, err = run_main(capsys, ["--space", "smoke", "--storage", str(tmp_path), "--name", "r"])
    assert code == 2 and "already exists" in err
    assert list((tmp_path / "r").iterdir()) == []


def test_dry_run_prints_the_plan_and_count_and_starts_nothing(tmp_path, capsys):
    argv = ["--space", "spectral_linf", "--storage", str(tmp_path), "--dry-run"]
    code, out, _ = run_main(capsys, argv)
    plan = get_space("spectral_linf").resolve("cpu")
    count = math.prod(len(p.corners()) for p in plan.params.values())
    assert code == 0 and out.strip().endswith(f"{count} trials")
    shown = min(count, launch._PLAN_ROWS_SHOWN)  # longer plans end with "... N more grid points"
    assert sum(1 for line in out.splitlines() if "knob=" in line) == shown
    assert list(tmp_path.iterdir()) == []
    code, out, _ = run_main(capsys, [*argv, "--search", "random", "--num-samples", "5"])
    assert code == 0 and out.strip().endswith("5 trials")


def test_list_spaces_names_every_space(capsys):
    code, out, _ = run_main(capsys, ["--list-spaces"])
    assert code == 0
    for name in ("spectral_linf", "neuron_l2", "at_spectral_linf", "uap_spectral_linf", "smoke"):
        assert name in out


def test_the_real_process_exits_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "sweep.launch", "--space", "nope", "--storage", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
