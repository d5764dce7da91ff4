"""A backend whose ``create()`` raises KeyError: not the ValueError the contract asks for."""

from __future__ import annotations

from typing import Any

from orchestrator_core.hookspecs import RegisterAgentBackend, hookimpl
from orchestrator_core.models import AgentConfig
from orchestrator_hostile_plugin import armed


class KeyErrorBackend:
    name = "hostile-create-keyerror"

    def create(self, config: AgentConfig) -> Any:
        return {}["model"]


@hookimpl
def register_agents(register: RegisterAgentBackend) -> None:
    if armed("hostile-create-keyerror"):
        register(KeyErrorBackend())
