"""``/metrics`` over plain HTTP, on a port of its own, for Prometheus to scrape.

prometheus-client's server runs in daemon threads (one to accept, one per request), so a
scrape never waits for the event loop, and still answers while the loop is stalled (the
stall is one of the things it reports). The port has no bearer-token authentication: the
metrics carry no secrets and no ids (see :mod:`.labels`); keep the port off the public
network, as deploy/ does.
"""

from __future__ import annotations

import asyncio
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

METRICS_PORT_SETTING = "ORCH_METRICS_PORT"
WILDCARDS = ("0.0.0.0", "::")


class MetricsAddressUnavailable(OSError):
    """The metrics server cannot listen on its host and port."""


class MetricsHttpServer:
    """Serves ``registry`` at ``http://host:port/metrics`` once :meth:`start` ed."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry = registry
        self.host = host.strip("[]") or "0.0.0.0"
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where a client on this machine scrapes: a wildcard host on the loopback address."""
        host = "127.0.0.1" if self.host in WILDCARDS else self.host
        return f"http://{_bracketed(host)}:{self.port}/metrics"

    @property
    def bound(self) -> str:
        return f"{_bracketed(self.host)}:{self.port}"

    def start(self) -> int:
        """Listen and serve; the port bound (the one picked, for port 0)."""
        try:
            self._server, self._thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            raise MetricsAddressUnavailable(
                f"cannot serve metrics on {self.bound}: {(exc.strerror or str(exc)).lower()} "
                f"({METRICS_PORT_SETTING}, or serve --metrics-port; the host is ORCH_HOST's)"
            ) from exc
        self.port = self._server.server_port
        return self.port

    async def close(self) -> None:
        """Stop serving; returns once the server's thread has ended."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        await asyncio.to_thread(_stop, server, thread)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _stop(server: WSGIServer, thread: threading.Thread | None) -> None:
    server.shutdown()  # waits for serve_forever to return (it polls every 0.5 s)
    server.server_close()
    if thread is not None:
        thread.join()
