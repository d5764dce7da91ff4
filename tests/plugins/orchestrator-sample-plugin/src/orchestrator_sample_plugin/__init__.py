"""A small third-party plugin: a rule-based agent backend and a length check.

Its agents write deterministic text from the task, so a deliberation through it is
reproducible without any model server. The ``delay_seconds`` option makes every agent call
take that long, so tests can catch a server mid-deliberation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from orchestrator_core.hookspecs import RegisterAgentBackend, RegisterCheck, hookimpl
from orchestrator_core.models import (
    AgentConfig,
    AgentReply,
    CheckResult,
    Critique,
    Proposal,
    Task,
    TokenUsage,
)


class TemplateAgent:
    def __init__(self, config: AgentConfig) -> None:
        self.agent_id = config.agent_id
        self.style = str(config.options.get("style", "plain"))
        self.delay_seconds = float(config.options.get("delay_seconds", 0.0))

    async def generate(self, task: Task) -> AgentReply:
        await asyncio.sleep(self.delay_seconds)
        text = f"[{self.style}] {self.agent_id} proposes: {task.description}" + "!" * len(self.agent_id)
        return AgentReply(text, TokenUsage(len(task.description.split()), len(text.split())))

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        await asyncio.sleep(self.delay_seconds)
        return AgentReply(f"{self.agent_id}: {proposal.author_id} should be more specific", TokenUsage(1, 1))

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        await asyncio.sleep(self.delay_seconds)
        return AgentReply(f"{proposal.content} (specific, after {len(feedback)} critique)", TokenUsage(1, 1))


class TemplateBackend:
    name = "sample-template"

    def create(self, config: AgentConfig) -> TemplateAgent:
        unknown = set(config.options) - {"style", "delay_seconds"}
        if unknown:
            raise ValueError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return TemplateAgent(config)


class LengthCheck:
    name = "sample-length"
    kind = "length"

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        started = time.monotonic()
        score = min(1.0, len(proposal.content) / 200)
        return CheckResult(self.name, self.kind, score >= 0.25, score,
                           (f"{len(proposal.content)} characters",), time.monotonic() - started)


@hookimpl
def register_agents(register: RegisterAgentBackend) -> None:
    register(TemplateBackend())


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    register(LengthCheck())
