"""The NATS connection of the work queue: reconnecting for ever, and never showing credentials.

``ORCH_NATS_URL`` may carry a user and password (``nats://user:password@host:4222``) or a
token (``nats://token@host:4222``), and several servers, comma-separated. Every message
and log line names the servers through :func:`shown_servers`, without them.
"""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client

from orchestrator_core.redaction import redact_url
from orchestrator_grpc.jetstream.errors import NATS_URL_ENV, QueueUnavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 2.0
"""One attempt to reach one server."""
RECONNECT_WAIT_SECONDS = 0.5
"""Between two attempts to reach the servers again, for ever, once connected once."""
START_SECONDS = 15.0
"""How long starting keeps trying to reach a server before it gives up."""


def servers_of(url: str) -> list[str]:
    """The server URLs of ``ORCH_NATS_URL`` (comma-separated)."""
    return [server.strip() for server in url.split(",") if server.strip()]


def shown_servers(url: str) -> str:
    """``ORCH_NATS_URL`` as messages may show it: each server without user, password or token."""
    return ", ".join(redact_url(server) for server in servers_of(url))


def scrubbed(text: str, url: str) -> str:
    """``text`` (a client library's message) with any configured server URL in it shown redacted."""
    for server in servers_of(url):
        text = text.replace(server, redact_url(server))
    return text


async def connect(url: str, name: str, start_seconds: float | None = None) -> Client:
    """A connection to ``url``'s servers that reconnects without end once made.

    The first connection is tried for ``start_seconds`` (default ``START_SECONDS``); then
    :class:`QueueUnavailable`.
    """
    if start_seconds is None:
        start_seconds = START_SECONDS
    shown = shown_servers(url)
    client: Client | None = None

    async def disconnected() -> None:
        if client is not None and not client.is_closed:  # not our own close
            log.warning("the work queue's NATS connection (%s) is lost; reconnecting", shown)

    async def reconnected() -> None:
        log.info("the work queue's NATS connection (%s) is back", shown)

    async def error(exc: Exception) -> None:
        log.debug("NATS (%s): %s", shown, scrubbed(f"{type(exc).__name__}: {exc}", url))

    try:
        async with asyncio.timeout(start_seconds):
            # The client itself tries the servers again and again until one answers.
            client = await nats.connect(
                servers=servers_of(url),
                name=name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT_SECONDS,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
            )
    except Exception as exc:
        reason = (
            "no server answered" if isinstance(exc, TimeoutError) else scrubbed(str(exc) or type(exc).__name__, url)
        )
        raise QueueUnavailable(
            f"the work queue's NATS servers ({shown}, {NATS_URL_ENV}) cannot be reached "
            f"within {start_seconds:g}s: {reason}"
        ) from None
    return client
