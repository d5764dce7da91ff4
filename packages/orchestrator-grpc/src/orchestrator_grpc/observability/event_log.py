"""One structured log line per event that matters in a deliberation."""

from __future__ import annotations

from orchestrator_core.telemetry import Telemetry


class EventLog(Telemetry):
    """Logs each deliberation, agent call and check as it ends (skeleton: logs nothing yet)."""
