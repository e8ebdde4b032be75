"""The run-directory lock: one writer per run; stale locks of dead holders are taken over."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time

import polars as pl
import pytest

import sweep.lock as lock_module
from sweep.lock import RunLock, lock_path
from sweep.rundir import RunLocation
from tests.sweep.spaces_for_tests import launch_test_long
from tests.sweep.test_fault_tolerance import REPO
from tests.sweep.test_launch import QUIET, run_main
from trainables.errors import ConfigError


def write_lock(location: RunLocation, *, host: str, pid: int, age: float = 0.0) -> str:
    path = lock_path(location)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    holder = {"host": host, "pid": pid, "started": "2026-01-01T00:00:00+0000", "token": "x"}
    with open(path, "w") as f:
        json.dump(holder, f)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_acquire_names_the_holder_until_released(tmp_path):
    location = RunLocation(str(tmp_path), "r")
    held = RunLock.acquire(location)
    with pytest.raises(ConfigError) as refused:
        RunLock.acquire(location)
    message = str(refused.value)
    assert f"pid {os.getpid()}" in message and socket.gethostname() in message
    assert held.holder["started"] in message and "\n" not in message
    held.release()
    assert not os.path.exists(lock_path(location))
    RunLock.acquire(location).release()


def test_stale_locks_are_taken_over_with_a_message(tmp_path, caplog, sleeper):
    location = RunLocation(str(tmp_path), "r")
    here = socket.gethostname()
    with caplog.at_level(logging.WARNING, logger="sweep.lock"):
        write_lock(location, host=here, pid=dead_pid())
        RunLock.acquire(location).release()
        assert "is gone" in caplog.text
        write_lock(location, host="elsewhere", pid=1, age=lock_module.STALE_S + 60)
        RunLock.acquire(location).release()
        assert "heartbeat" in caplog.text
    # Live holders are respected: a live pid here, a fresh heartbeat from another host.
    for host, pid in ((here, sleeper), ("elsewhere", 1)):
        write_lock(location, host=host, pid=pid)
        with pytest.raises(ConfigError, match=f"pid {pid} on host {host}"):
            RunLock.acquire(location)
        os.unlink(lock_path(location))


def test_heartbeat_keeps_a_long_run_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.05)
    location = RunLocation(str(tmp_path), "r")
    held = RunLock.acquire(location)
    old = time.time() - 10 * lock_module.STALE_S
    os.utime(lock_path(location), (old, old))
    time.sleep(0.5)
    assert time.time() - os.path.getmtime(lock_path(location)) < lock_module.STALE_S
    held.release()


def test_launcher_refuses_a_held_run_with_one_line(tmp_path, capsys, sleeper):
    location = RunLocation(str(tmp_path), "r")
    write_lock(location, host=socket.gethostname(), pid=sleeper)
    argv = ["--space", "smoke", "--scale", "smoke", "--storage", str(tmp_path), "--name", "r",
            *QUIET]
    code, _, err = run_main(capsys, argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and f"pid {sleeper}" in lines[0], err
    assert not (tmp_path / "r").exists()
    assert os.path.exists(lock_path(location))  # the holder's lock is left alone


def test_two_concurrent_launches_of_one_run(tmp_path):
    """Real processes, started together: one runs the sweep, the other exits 2 naming it, and
    the store holds the winner's trials exactly once."""
    args = launch_test_long(tmp_path, "--no-dashboard", "--set", "epochs=1")
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    procs = [
        subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    done = [(p.returncode, *out) for p, out in zip(procs, outputs)]
    codes = sorted(code for code, _, _ in done)
    assert codes == [0, 2], done
    _, _, err = next(d for d in done if d[0] == 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "in use by pid" in lines[0] and "host" in lines[0], err
    store = tmp_path / "run" / "store"
    trials = pl.read_parquet(store / "trials" / "*.parquet")
    assert trials.height == 4 and trials["trial_id"].n_unique() == 4
    assert set(trials["status"]) == {"completed"}
    for table in ("history", "robustness", "layers"):
        frame = pl.read_parquet(store / table / "*.parquet")
        assert set(frame["trial_id"]) == set(trials["trial_id"]), table
        keys = frame.group_by("trial_id", "iteration").len()
        assert keys.height == 4 and set(keys["iteration"]) == {1}, table
    history = pl.read_parquet(store / "history" / "*.parquet")
    assert history.height == 4
    assert not os.path.exists(lock_path(RunLocation(str(tmp_path), "run")))  # released
