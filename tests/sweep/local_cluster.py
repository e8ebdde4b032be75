"""A two-node Ray cluster on this machine for tests: `ray start --head` plus `ray start --address`.

Torn down by killing exactly the processes it started (found by its own --temp-dir in their
command lines, plus their children), never with `ray stop`, which would stop every Ray here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    def __init__(self) -> None:
        # Short path: Ray's unix socket paths must stay under ~100 characters.
        self.temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Token authentication stays on: nodes and drivers use the local ~/.ray token.
        self.env = {**os.environ, "RAY_AUTH_MODE": "token"}

    def start(self) -> LocalCluster:
        common = ["--num-cpus=1", "--disable-usage-stats"]
        self._run(
            "start",
            "--head",
            f"--port={self.port}",
            f"--temp-dir={self.temp_dir}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            '--resources={"head_node": 1}',
            *common,
        )
        self._run(
            "start",
            f"--address={self.address}",
            '--resources={"worker_node": 1}',
            f"--dashboard-agent-listen-port={free_port()}",
            *common,
        )
        return self

    def _run(self, *args: str) -> None:
        subprocess.run([RAY, *args], env=self.env, check=True, capture_output=True, timeout=180)

    def pids(self) -> set[int]:
        """Processes whose command line names this cluster's temp dir, and their children."""
        found: set[int] = set()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if self.temp_dir.encode() in (proc / "cmdline").read_bytes():
                    found.add(int(proc.name))
            except OSError:
                continue
        for pid in list(found):
            found |= _children(pid)
        return found

    def stop(self) -> None:
        for _ in range(3):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            out |= {kid} | _children(kid)
    return out
