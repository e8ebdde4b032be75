"""The HTTP endpoint that serves one Prometheus CollectorRegistry, and its lifecycle.

Binds to 127.0.0.1 unless `host` says otherwise (DESIGN.md, safety stance). After its experiment
an endpoint may linger (serve a while longer, so a last scrape sees the final counts); a new
endpoint asking for the same host and port ends a lingering one at once and takes the port over.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from trainables.errors import ConfigError

logger = logging.getLogger(__name__)

# Endpoints lingering after their experiment, by (host, port): a new endpoint on that port ends
# them. Process-wide on purpose: ports are a process-wide (indeed host-wide) resource.
_lingering: dict[tuple[str, int], MetricsEndpoint] = {}
_lingering_lock = threading.Lock()


class MetricsEndpoint:
    """Serves `registry` at http://host:port/metrics. port=None binds an ephemeral free port."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int | None) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self.url: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # close() may run in the linger timer's thread
        self._linger_timer: threading.Timer | None = None

    @property
    def serving(self) -> bool:
        return self._server is not None

    def start(self) -> str:
        """Start serving (idempotent) and return the URL. A busy port raises ConfigError."""
        if self._server is None:
            if self.port is not None:
                with _lingering_lock:
                    previous = _lingering.pop((self.host, self.port), None)
                if previous is not None:
                    previous.close()
            try:
                server, thread = start_http_server(
                    self.port or 0, addr=self.host, registry=self.registry
                )
            except OSError as err:
                raise ConfigError(
                    f"metrics endpoint cannot bind {self.host}:{self.port} ({err.strerror}); "
                    "pass another --metrics-port, or 0 to disable it"
                ) from err
            self._server, self._thread = server, thread
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.url = f"http://{host}:{server.server_port}/metrics"
            logger.info("sweep metrics at %s", self.url)
        return self.url

    def linger(self, seconds: float) -> None:
        """Keep serving `seconds` more (a daemon timer: never delays process exit), then close;
        0 closes now. A new endpoint on the same port ends the linger early."""
        if seconds <= 0 or self._server is None:
            self.close()
            return
        with _lingering_lock:
            _lingering[(self.host, self._server.server_port)] = self
        self._linger_timer = threading.Timer(seconds, self.close)
        self._linger_timer.daemon = True
        self._linger_timer.start()

    def close(self) -> None:
        """Stop the server and free its port now (idempotent; also ends a linger)."""
        with self._lock:
            if self._linger_timer is not None:
                self._linger_timer.cancel()
                self._linger_timer = None
            server, self._server = self._server, None
            if server is not None:
                with _lingering_lock:
                    key = (self.host, server.server_port)
                    if _lingering.get(key) is self:
                        del _lingering[key]
                server.shutdown()
                server.server_close()
                if self._thread is not None:
                    self._thread.join(timeout=5)
            self._thread = None


__all__ = ["MetricsEndpoint"]
