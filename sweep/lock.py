"""One writer per run directory: a lock file beside it, <storage>/.<name>.lock.

The lock is a file created with O_CREAT | O_EXCL (atomic on local file systems and on NFS v3+),
holding {host, pid, started, token}. The holder refreshes its mtime every HEARTBEAT_S seconds from
a daemon thread. A lock is stale, and is taken over with a message, when its holder is on this
host and its pid is gone, or when its heartbeat is older than STALE_S (a holder on another host
that died, or a pid reused here). The take-over itself is serialized by a second exclusive file
(<lock>.break), so two launchers recovering the same stale lock cannot both win.

Beside the run directory, not in it: the lock is taken before anything of the run is written, and
a fresh run's directory must not exist yet.

Object stores (s3://, gs://, ...) have no exclusive create through pyarrow.fs: there the lock is
advisory - written if absent, then read back after a pause to detect a writer that raced us. That
narrows the window to the pause but does not close it; run one launcher per run name there.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from sweep.rundir import RunLocation
from sweep.store._layout import resolve_fs
from trainables.errors import ConfigError

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
STALE_S = 120.0  # 12 missed heartbeats; assumes clocks agree within a minute across hosts
_RACE_PAUSE_S = 1.0  # object stores: wait, then read our lock back


def lock_path(location: RunLocation) -> str:
    return f"{location.storage.rstrip('/')}/.{location.name}.lock"


@dataclass
class RunLock:
    """A held lock; release() is idempotent and also runs at interpreter exit."""

    path: str
    fs: pafs.FileSystem
    local: bool
    holder: dict[str, Any]
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def acquire(cls, location: RunLocation) -> RunLock:
        """Take the lock of location's run directory, or raise ConfigError naming its holder."""
        fs, path = resolve_fs(lock_path(location))
        local = isinstance(fs, pafs.LocalFileSystem)
        holder = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "token": secrets.token_hex(8),
            "run_dir": location.run_dir,
        }
        lock = cls(path, fs, local, holder)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        for _ in range(3):  # a stale lock is broken, then we try again
            if lock._try_create():
                lock._start_heartbeat()
                atexit.register(lock.release)
                return lock
            current = lock._read()
            if current is None and not lock._exists():
                continue  # released between our create and our read
            why = _stale_reason(current, lock._age())
            if why is None:
                raise ConfigError(_held_message(location, current))
            lock._break(current, why)
        raise ConfigError(_held_message(location, lock._read()))

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=HEARTBEAT_S)
        try:
            if (self._read() or {}).get("token") == self.holder["token"]:
                self.fs.delete_file(self.path)
        except OSError:
            pass  # the file is gone or unreadable: nothing of ours to remove
        atexit.unregister(self.release)

    # ---- the file ---------------------------------------------------------------------------
    def _try_create(self) -> bool:
        data = json.dumps(self.holder).encode()
        if self.local:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            return True
        if self.fs.get_file_info(self.path).type != pafs.FileType.NotFound:
            return False
        with self.fs.open_output_stream(self.path) as out:
            out.write(data)
        time.sleep(_RACE_PAUSE_S)
        return (self._read() or {}).get("token") == self.holder["token"]

    def _read(self) -> dict[str, Any] | None:
        try:
            with self.fs.open_input_stream(self.path) as f:
                doc = json.loads(f.read() or b"null")
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def _exists(self) -> bool:
        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def _age(self) -> float:
        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.NotFound or info.mtime is None:
            return 0.0
        return time.time() - info.mtime.timestamp()

    def _break(self, stale: dict[str, Any] | None, why: str) -> None:
        """Remove a stale lock, re-checked under <lock>.break so only one launcher does it."""
        breaker = f"{self.path}.break"
        if self.local:
            try:
                if time.time() - os.path.getmtime(breaker) > STALE_S:
                    os.unlink(breaker)  # a launcher died while breaking
            except OSError:
                pass
            try:
                os.close(os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            except FileExistsError:
                return  # another launcher is breaking it; try again
        try:
            current = self._read()
            if current == stale and _stale_reason(current, self._age()) is not None:
                self.fs.delete_file(self.path)
                log.warning("took over the stale lock %s: %s", self.path, why)
        except OSError:
            pass
        finally:
            if self.local:
                try:
                    os.unlink(breaker)
                except OSError:
                    pass

    # ---- heartbeat --------------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="run-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if self.local:
                    os.utime(self.path)
                else:
                    with self.fs.open_output_stream(self.path) as out:
                        out.write(json.dumps(self.holder).encode())
            except OSError:
                log.warning("cannot refresh the lock %s; another launcher may take it", self.path)


def _stale_reason(holder: dict[str, Any] | None, age: float) -> str | None:
    """Why the lock can be taken over, or None while its holder may be alive."""
    if holder is None:
        # Unreadable: a holder that died between create and write, or one writing right now.
        return f"it is unreadable and {age:.0f} s old" if age > STALE_S else None
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        if not _pid_alive(holder["pid"]):
            return f"its holder, pid {holder['pid']} on this host, is gone"
    if age > STALE_S:
        who = f"pid {holder.get('pid')} on {holder.get('host')}"
        return f"its heartbeat ({who}) stopped {age:.0f} s ago"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def _held_message(location: RunLocation, holder: dict[str, Any] | None) -> str:
    who = (
        f"pid {holder.get('pid')} on host {holder.get('host')} (started {holder.get('started')})"
        if holder
        else "another launcher (its lock file is being written)"
    )
    return (
        f"run {location.run_dir} is in use by {who}; wait for it to finish, or pass another "
        f"--name (lock: {lock_path(location)})"
    )
