"""The launcher CLI: every bad input exits 2 with one line on stderr and writes nothing."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from sweep import launch
from sweep.launch import main
from sweep.options import DEFAULT_METRICS_PORT, LaunchOptions
from sweep.preflight import check_cluster_fits, local_gpu_count, prepare_launch
from sweep.spaces import get_space
from tests.sweep.test_fault_tolerance import REPO
from trainables.errors import ConfigError

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
        "string for a float": [*base, "--set", "strength=abc"],
        "string for a float list": [*base, "--set", 'eps_linf="x"'],
        "infinite eps": [*base, "--set", "eps_linf=[Infinity]"],
        "overflowing eps": [*base, "--set", "eps_linf=[0.01,1e400]"],
        "infinite lr": [*base, "--set", "lr=Infinity"],
        "NaN lr": [*base, "--set", "lr=NaN"],
        "NaN strength": [*base, "--set", "strength=NaN"],
        "infinite at_eps": [*base, "--set", "at_eps=1e999"],
        "number for a string": [*base, "--set", "attack=3"],
        "number for a bool": [*base, "--set", "proximal=1"],
        "float for an int": [*base, "--set", "epochs=1.5"],
        "set without value": [*base, "--set", "epochs"],
        "infinite cpus": [*base, "--cpus-per-trial", "inf"],
        "NaN gpus": [*base, "--gpus-per-trial", "nan"],
        "more CPUs than the machine": [*base, "--cpus-per-trial", str((os.cpu_count() or 1) + 62)],
        "more GPUs than the machine": [*base, "--gpus-per-trial", str(local_gpu_count() + 1)],
        "unreachable address": [*base, "--address", "127.0.0.1:1"],
        "negative resource wait": [*base, "--resource-wait", "-1"],
        "infinite resource wait": [*base, "--resource-wait", "inf"],
        "negative checkpoint seconds": [*base, "--checkpoint-seconds", "-1"],
        "checkpoint seconds not a number": [*base, "--checkpoint-seconds", "often"],
        "NaN checkpoint seconds": [*base, "--checkpoint-seconds", "nan"],
        "metrics port out of range": [*base, "--metrics-port", "70000"],
        "fractional GPUs above one": [*base, "--gpus-per-trial", "1.5"],
        "unknown flag": [*base, "--colour"],
    }


def snapshot(root) -> dict[str, tuple]:
    """Every path under root with its type, size and mtime: "nothing written" made checkable."""
    return {
        str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def test_every_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    table = bad_inputs(tmp_path)
    before = snapshot(tmp_path)
    for what, argv in table.items():
        started = time.monotonic()
        code, out, err = run_main(capsys, argv)
        assert time.monotonic() - started < 30, what  # an unreachable --address fails fast
        assert code == 2, (what, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, err)
        assert "Traceback" not in out + err, what
        assert snapshot(tmp_path) == before, what


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


def saved_smoke_run(storage, **options_kw) -> None:
    """A run directory as a launch leaves it before its first trial: run.json (no Ray needed)."""
    from sweep.options import LaunchOptions
    from sweep.preflight import prepare_launch
    from sweep.service import run_spec

    options = LaunchOptions(space="smoke", scale="smoke", storage=str(storage), name="r",
                            metrics_port=0, trial_options={"epochs": 2}, **options_kw)
    launch = prepare_launch(options)
    launch.lock.release()
    launch.location.write_run_json(run_spec(launch))


def test_run_json_records_the_environment(tmp_path):
    import torch

    saved_smoke_run(tmp_path)
    env = json.loads((tmp_path / "r" / "run.json").read_text())["environment"]
    assert env["packages"]["torch"] == torch.__version__
    assert env["python"] == sys.version.split()[0]


def test_resume_refuses_flags_that_change_the_plan(tmp_path, capsys):
    saved_smoke_run(tmp_path)
    base = ["--resume", "--name", "r", "--storage", str(tmp_path), "--dry-run", *QUIET]
    changes = {
        "space": ["--space", "neuron_l2"],
        "scale": ["--scale", "cpu"],
        "trial-options": ["--set", "epochs=3"],
        "dataset": ["--dataset", "synthetic"],
        "num-samples": ["--num-samples", "2"],
        "search": ["--search", "random"],
        "scheduler": ["--scheduler", "asha"],
    }
    before = sorted(p.name for p in (tmp_path / "r").rglob("*"))
    for flag, extra in changes.items():
        code, out, err = run_main(capsys, [*base, *extra])
        assert code == 2, (flag, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"--{flag} " in lines[0] and "differs" in lines[0], lines
    # The same values again, and placement flags, are fine (the plan is the run's).
    for extra in (["--space", "smoke", "--scale", "smoke", "--set", "epochs=2"],
                  ["--cpus-per-trial", "2", "--max-failures", "0", "--address", "auto",
                   "--checkpoint-seconds", "0"], []):
        code, out, err = run_main(capsys, [*base, *extra])
        assert code == 0, (extra, err)
        assert "space smoke (scale smoke)" in out and "epochs=2" in out
    assert sorted(p.name for p in (tmp_path / "r").rglob("*")) == before


def test_resume_keeps_the_runs_checkpoint_seconds_unless_given(tmp_path):
    saved_smoke_run(tmp_path, checkpoint_seconds=3.0)
    again = LaunchOptions(storage=str(tmp_path), name="r", resume=True, dry_run=True,
                          metrics_port=0)
    assert prepare_launch(again, given=["name", "storage"]).options.checkpoint_seconds == 3.0
    changed = replace(again, checkpoint_seconds=0.0)
    given = ["name", "storage", "checkpoint_seconds"]
    assert prepare_launch(changed, given=given).options.checkpoint_seconds == 0.0


def test_resource_messages_name_both_numbers(tmp_path, capsys):
    cpus = os.cpu_count() or 1
    base = ["--storage", str(tmp_path), "--name", "r", "--space", "smoke", "--scale", "smoke"]
    _, _, err = run_main(capsys, [*base, *QUIET, "--cpus-per-trial", str(cpus + 62)])
    assert f"--cpus-per-trial {cpus + 62}" in err and f"the {cpus} CPUs" in err
    _, _, err = run_main(capsys, [*base, *QUIET, "--address", "127.0.0.1:1"])
    assert "127.0.0.1:1 is not reachable" in err


class FakeCluster:
    """ray.nodes() as it changes: an autoscaler adds a bigger node after `grow_after` polls."""

    def __init__(self, grow_after: int | None) -> None:
        self.polls, self.grow_after, self.now, self.slept = 0, grow_after, 0.0, []

    def nodes(self) -> list[dict[str, float]]:
        self.polls += 1
        small = {"CPU": 2.0}
        if self.grow_after is not None and self.polls > self.grow_after:
            return [small, {"CPU": 8.0, "GPU": 1.0}]
        return [small]

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_cluster_fit_waits_for_an_autoscaler_then_gives_up_with_both_numbers():
    options = LaunchOptions(cpus_per_trial=4, gpus_per_trial=1, resource_wait=12, storage="/x")
    grows = FakeCluster(grow_after=2)
    check_cluster_fits(options, grows.nodes, grows.sleep, lambda: grows.now)
    assert grows.polls == 3 and grows.now <= 12

    never = FakeCluster(grow_after=None)
    with pytest.raises(ConfigError) as caught:
        check_cluster_fits(options, never.nodes, never.sleep, lambda: never.now)
    message = str(caught.value)
    assert "needs 4 CPUs and 1 GPUs" in message and "have 2 CPUs and 0 GPUs" in message
    assert never.now == 12 and "after waiting 12 s" in message

    at_once = FakeCluster(grow_after=None)
    with pytest.raises(ConfigError):
        check_cluster_fits(replace(options, resource_wait=0), at_once.nodes, at_once.sleep,
                           lambda: at_once.now)
    assert at_once.polls == 1 and at_once.slept == []
    fits = FakeCluster(grow_after=None)
    check_cluster_fits(replace(options, cpus_per_trial=2, gpus_per_trial=0), fits.nodes,
                       fits.sleep, lambda: fits.now)


def test_metrics_endpoint_is_bound_by_preflight_and_the_default_port_moves(tmp_path):
    """The port is held from preflight on, so a second launch cannot pass a check and then lose
    the race; a busy default port moves to a free one instead of failing."""
    def options(port: int, name: str) -> LaunchOptions:
        return LaunchOptions(space="smoke", scale="smoke", storage=str(tmp_path), name=name,
                             metrics_port=port)

    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    first = prepare_launch(options(port, "a"))
    try:
        assert first.metrics.url == f"http://127.0.0.1:{port}/metrics"
        with socket.socket() as late, pytest.raises(OSError):
            late.bind(("127.0.0.1", port))  # held since preflight: no window for another sweep
        with pytest.raises(ConfigError, match="in use"):  # an explicit busy port: bad input
            prepare_launch(options(port, "b"))
    finally:
        first.metrics.close()
        first.lock.release()

    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", DEFAULT_METRICS_PORT))
    except OSError:
        holder.close()
        holder = None  # someone else holds the default port: the case under test anyway
    try:
        moved = prepare_launch(options(DEFAULT_METRICS_PORT, "c"))
        assert moved.metrics.url != f"http://127.0.0.1:{DEFAULT_METRICS_PORT}/metrics"
        moved.metrics.close()
        moved.lock.release()
    finally:
        if holder is not None:
            holder.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "fault, rc, words",
    [
        (KeyboardInterrupt(), 130, "interrupted twice"),
        (RuntimeError("Tune: a callback failed"), 1, "No space left on device"),
    ],
    ids=["second Ctrl-C", "full disk inside Tune"],
)
def test_faults_during_the_sweep_end_with_one_line(tmp_path, capsys, monkeypatch, fault, rc, words):
    """What Tune raises out of fit() reaches the user as one line with the way to continue."""
    import errno

    import sweep.service

    if isinstance(fault, RuntimeError):  # how Tune wraps a callback's OSError
        try:
            try:
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.parquet"))
            except OSError as disk:
                raise fault from disk
        except RuntimeError as wrapped:
            fault = wrapped

    def failing_sweep(launch, **kwargs):
        raise fault

    monkeypatch.setattr(sweep.service, "run_sweep", failing_sweep)
    argv = ["--space", "smoke", "--scale", "smoke", "--storage", str(tmp_path), "--name", "r",
            *QUIET]
    code, out, err = run_main(capsys, argv)
    assert code == rc
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "--resume --name r" in lines[0], err
    assert "Traceback" not in out + err


def test_tunes_trial_failure_log_becomes_one_line():
    """Tune logs each failed attempt with the worker's traceback; the launcher keeps one line."""
    import io
    import logging

    from sweep.service import OneLineTrialErrors

    logger = logging.getLogger("tests.tune_controller_stand_in")
    logger.propagate = False
    out = io.StringIO()
    logger.addHandler(logging.StreamHandler(out))
    logger.addFilter(OneLineTrialErrors())
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as disk:
            raise RuntimeError("ray::ImplicitFunc.train()\n  File ...\n" + str(disk)) from disk
    except RuntimeError:
        logger.error("Trial task failed for trial %s", "t1", exc_info=True)
    lines = out.getvalue().splitlines()
    assert lines == ["Trial task failed for trial t1: [Errno 28] No space left on device"]


def test_ssh_hint_uses_the_port_ray_gave_the_dashboard(capsys):
    from sweep.launch import _print_dashboard

    _print_dashboard("http://127.0.0.1:8266")  # Ray moved it: 8265 was taken
    out = capsys.readouterr().out
    assert "ssh -L 8266:127.0.0.1:8266" in out and "8265" not in out


def test_every_launch_option_is_a_flag_with_help_and_the_same_default():
    import dataclasses

    from sweep.launch import build_parser, options_from_args
    from sweep.options import LaunchOptions

    parser = build_parser()
    by_dest = {a.dest: a for a in parser._actions}
    for field in dataclasses.fields(LaunchOptions):
        assert field.name in by_dest, field.name
        assert by_dest[field.name].help or field.name in ("search", "cpus_per_trial"), field.name
    # No flags given: exactly the dataclass defaults (storage made absolute the same way).
    assert options_from_args(parser.parse_args([])) == LaunchOptions()
    flipped = options_from_args(parser.parse_args(["--no-report", "--set", "epochs=2", "--resume",
                                                   "--name", "r"]))
    assert (flipped.report, flipped.trial_options, flipped.resume) == (False, {"epochs": 2}, True)
