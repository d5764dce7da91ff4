"""A hookimpl whose argument is not the hookspec's (``registry`` for ``register``)."""

from __future__ import annotations

from typing import Any

from orchestrator_core.hookspecs import hookimpl
from orchestrator_hostile_plugin import armed

if armed("hostile-wrong-hook"):

    @hookimpl
    def register_agents(registry: Any) -> None:
        registry(object())
