"""Plugins that misbehave on purpose, one way per entry point; each is inert (registers
nothing) unless the environment variable ``ORCHESTRATOR_HOSTILE_PLUGINS`` names its entry
point, so that installing the package changes nothing for a service that loads every
installed plugin."""

from __future__ import annotations

import os
import time

from orchestrator_core.models import CheckResult

ARMING_VARIABLE = "ORCHESTRATOR_HOSTILE_PLUGINS"
KIND = "hostile"
SLEEP_SECONDS = 3.0
"""How long the sleeping checks block each run: well beyond a test's ORCH_LOOP_STALL_SECONDS."""


def armed(entry_point: str) -> bool:
    """True when ORCHESTRATOR_HOSTILE_PLUGINS names this entry point."""
    names = {name.strip() for name in os.environ.get(ARMING_VARIABLE, "").split(",")}
    return entry_point in names


def passing(name: str, kind: str = KIND) -> CheckResult:
    started = time.monotonic()
    return CheckResult(name, kind, True, 1.0, ("fine",), time.monotonic() - started)
