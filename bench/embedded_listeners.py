"""Which TCP sockets an embedded sweep listens on, by address: run the launcher (smoke space) and
poll `ss -ltnp` for sockets owned by its process tree, then print the union as ADDRESS:PORT PROCESS.

    PYTHONPATH=$PWD .venv/bin/python bench/embedded_listeners.py [--keep-dashboard] [--seconds 300]

Loopback (127.0.0.1, ::1) is marked "loopback"; everything else is what a neighbour could reach.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tree(root: int) -> set[int]:
    """root and its descendants, from /proc (Ray's raylet, GCS and agents are its children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def listeners(pids: set[int]) -> set[tuple[str, str]]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=False).stdout
    found = set()
    for line in out.splitlines():
        cols = line.split()
        local = cols[3]
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line):
            if int(pid) in pids:
                found.add((local, name))
    return found


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, and IPv4-mapped loopback on a dual-stack socket (::ffff:127.0.0.1)."""
    import ipaddress

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # "*" or "0.0.0.0"-style wildcards: every interface
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=400)
    p.add_argument("--no-dashboard", action="store_true")
    args = p.parse_args()
    storage = tempfile.mkdtemp(prefix="listeners-")
    argv = [sys.executable, "-m", "sweep.launch", "--space", "smoke", "--scale", "smoke",
            "--storage", storage, "--name", "listen", "--no-report"]
    if args.no_dashboard:
        argv.append("--no-dashboard")
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + args.seconds
    while proc.poll() is None and time.monotonic() < deadline:
        seen |= listeners(tree(proc.pid))
        time.sleep(0.5)
    if proc.poll() is None:
        proc.terminate()
    output = proc.communicate()[0]
    print(f"launcher rc {proc.returncode}; last lines:\n" + "\n".join(output.splitlines()[-6:]))
    print(f"launcher output: {output.count('Traceback')} traceback(s), "
          f"{output.count('SystemExit')} SystemExit mention(s)")
    beyond = 0
    for local, name in sorted(seen, key=lambda s: (s[0].rsplit(":", 1)[0], s[1])):
        loopback = is_loopback(local.rsplit(":", 1)[0].strip("[]"))
        beyond += not loopback
        print(f"{local:28s} {name:24s} {'loopback' if loopback else 'NOT LOOPBACK'}")
    print(f"{beyond} of {len(seen)} listening sockets beyond loopback")
    return 0


if __name__ == "__main__":
    sys.exit(main())
