"""The work queue on NATS JetStream, when ``ORCH_NATS_URL`` is set (see :mod:`.queue`).

``orchestrator serve`` and ``orchestrator worker`` build their queue with
:func:`queue_from_settings`; without ``ORCH_NATS_URL`` the orchestrator keeps its
in-process queue, and the NATS client is never imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator_core.settings import Settings
from orchestrator_grpc.jetstream.errors import NATS_URL_ENV, QueueUnavailable

if TYPE_CHECKING:
    from orchestrator_grpc.jetstream.queue import JetStreamQueue

__all__ = ["NATS_URL_ENV", "QueueUnavailable", "queue_from_settings"]


def queue_from_settings(settings: Settings, name: str = "orchestrator") -> JetStreamQueue | None:
    """The JetStream queue the settings name (not started), or None without ``ORCH_NATS_URL``."""
    if settings.nats_url is None or not settings.nats_url.get_secret_value().strip():
        return None
    from orchestrator_grpc.jetstream.queue import JetStreamQueue

    return JetStreamQueue(settings, name)
