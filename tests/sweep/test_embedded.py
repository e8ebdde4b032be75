"""Embedded Ray hygiene: leftovers of a dead driver's session are stopped on the next launch,
a live driver's are not; loopback_only() is undone when it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from sweep.embedded import loopback_only, record_session, stop_stale_sessions


def fake_agent(session: str) -> subprocess.Popen:
    """A process whose command line names the session, as Ray's agents' do (--session-dir=...)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", f"--session-dir={session}"]
    )


def test_agents_of_a_dead_drivers_session_are_stopped_and_a_live_ones_kept(tmp_path):
    records = tmp_path / "records"
    dead_session = str(tmp_path / "ray" / "session_2026-01-01_00-00-00_000001_1")
    live_session = str(tmp_path / "ray" / "session_2026-01-01_00-00-00_000002_2")
    orphan, survivor = fake_agent(dead_session), fake_agent(live_session)
    try:
        driver = subprocess.Popen([sys.executable, "-c", "import os; print(os.getpid())"],
                                  stdout=subprocess.PIPE, text=True)
        # the dead driver's record: written as the driver would, then the driver exits
        record = records / f"{driver.pid}.json"
        records.mkdir()
        record.write_text(f'{{"pid": {driver.pid}, "start": 1, "session": "{dead_session}"}}')
        driver.wait(timeout=60)
        record_session(live_session, records)  # this test process: a live driver

        lines = stop_stale_sessions(records)

        assert orphan.wait(timeout=10) == -signal.SIGTERM
        assert survivor.poll() is None  # its driver (this process) lives
        assert len(lines) == 1 and f"pid {driver.pid}" in lines[0] and dead_session in lines[0]
        assert not record.exists() and (records / f"{os.getpid()}.json").exists()
        assert stop_stale_sessions(records) == []  # nothing left to stop
    finally:
        for proc in (orphan, survivor):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_loopback_only_is_undone_on_exit():
    import ray
    from ray._private import ray_constants, services

    before_env = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    before_flag = ray_constants.ENABLE_RAY_CLUSTER
    with loopback_only():
        if not ray.is_initialized():  # else Ray answers with the running node's IP
            assert services.resolve_ip_for_localhost("127.0.0.1") == "127.0.0.1"
        assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == before_env
    assert ray_constants.ENABLE_RAY_CLUSTER == before_flag
