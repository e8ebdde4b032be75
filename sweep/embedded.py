"""The embedded (single-machine) Ray: bound to loopback, and its leftovers found on the next launch.

Loopback: Ray binds every gRPC server, agent and metrics exporter to 127.0.0.1 when the node's IP
is a loopback address, and to all interfaces otherwise (grpc_server.cc, dashboard/agent.py,
reporter_agent.py, autoscaler monitor: `get_localhost_ip() if is_localhost(ip) else all`). But
ray.init(_node_ip_address="127.0.0.1") rewrites a loopback address to the machine's routable IP
unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is off (services.resolve_ip_for_localhost ->
get_node_ip_address, ray_constants.ENABLE_RAY_CLUSTER): the single-node mode Ray uses on macOS and
Windows. `loopback_only()` switches that on for the processes ray.init spawns, then restores it, so
a later cluster in the same process (tests) is unaffected. docs/operations.md lists what listens.

Leftovers: a driver killed with SIGKILL cannot stop its Ray processes (agents, workers finishing
a trial), which keep running (and listening). Each embedded start records its session directory
and driver; the next launch stops (SIGTERM) the processes of sessions whose driver is gone. Only
our own records and our own user's processes whose command line names that session are touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

LOOPBACK = "127.0.0.1"
_SINGLE_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_STOP_WAIT_S = 3.0


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Inside: ray.init(_node_ip_address=LOOPBACK) keeps 127.0.0.1 as the node IP, so Ray binds
    its servers there. The processes Ray spawns inherit the setting; this process gets it back."""
    from ray._private import ray_constants

    saved_env, saved_flag = os.environ.get(_SINGLE_NODE_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_SINGLE_NODE_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(_SINGLE_NODE_ENV, None)
        else:
            os.environ[_SINGLE_NODE_ENV] = saved_env


def records_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"compress-robust-sweep-{os.getuid()}" / "embedded"


def record_session(session_dir: str, directory: Path | None = None) -> Path:
    """Remember this process as the driver of the embedded session at session_dir."""
    directory = directory or records_dir()
    directory.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    path = directory / f"{pid}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": pid, "start": _start_time(pid), "session": session_dir}))
    tmp.replace(path)
    return path


def stop_stale_sessions(directory: Path | None = None) -> list[str]:
    """Stop the processes of recorded sessions whose driver has died; one line per session."""
    directory = directory or records_dir()
    lines: list[str] = []
    if not Path("/proc").is_dir():  # the process scan needs Linux's /proc
        return lines
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        try:
            record = json.loads(path.read_text())
            pid, start, session = int(record["pid"]), record["start"], str(record["session"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # unreadable: ours, and of no use
            continue
        if _start_time(pid) == start and start is not None:
            continue  # the driver still runs: its session is live
        if not session or "session" not in Path(session).name:
            path.unlink(missing_ok=True)
            continue
        pids = session_processes(session)
        for victim in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(victim, signal.SIGTERM)
        _wait_gone(pids)
        for victim in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if _start_time(victim) is not None:
                    os.kill(victim, signal.SIGKILL)
        if pids:
            lines.append(
                f"stopped {len(pids)} Ray process(es) left by an earlier sweep whose driver "
                f"(pid {pid}) died: session {session}"
            )
        path.unlink(missing_ok=True)
    return lines


def session_processes(session_dir: str) -> list[int]:
    """Our user's processes whose command line names session_dir (Ray passes it to each)."""
    found, me, uid = [], os.getpid(), os.getuid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace"
            )
        except OSError:
            continue
        if session_dir in cmdline:
            found.append(int(entry))
    return found


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat): a pid plus this is
    one process, never a later one that reused the pid. None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + _STOP_WAIT_S
    while time.monotonic() < deadline and any(_start_time(p) is not None for p in pids):
        time.sleep(0.1)
