"""The work queue's error, importable without the NATS client (the status mapping needs it)."""

from __future__ import annotations

from orchestrator_core.errors import OrchestratorError

NATS_URL_ENV = "ORCH_NATS_URL"


class QueueUnavailable(OrchestratorError):
    """The work queue (NATS JetStream) cannot be reached or did not answer in time; the
    message names ``ORCH_NATS_URL``'s servers without their credentials (UNAVAILABLE)."""
