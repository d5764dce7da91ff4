"""A backend whose agents raise RuntimeError from every method: a bug, not an AgentError."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator_core.hookspecs import RegisterAgentBackend, hookimpl
from orchestrator_core.models import AgentConfig, AgentReply, Critique, Proposal, Task
from orchestrator_hostile_plugin import armed

FAILURE = "hostile agent failure"


class RaisingAgent:
    def __init__(self, config: AgentConfig) -> None:
        self.agent_id = config.agent_id

    async def generate(self, task: Task) -> AgentReply:
        raise RuntimeError(FAILURE)

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        raise RuntimeError(FAILURE)

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        raise RuntimeError(FAILURE)


class RaisingBackend:
    name = "hostile-agent-raises"

    def create(self, config: AgentConfig) -> RaisingAgent:
        return RaisingAgent(config)


@hookimpl
def register_agents(register: RegisterAgentBackend) -> None:
    if armed("hostile-agent-raises"):
        register(RaisingBackend())
