"""The plugin contract: the hooks a plugin implements and the objects it registers.

A plugin is a module or object with pluggy hookimpls, published under the entry-point
group ``orchestrator``. Each hook receives a ``register`` callback and calls it once per
thing it adds::

    from orchestrator_core.hookspecs import hookimpl

    @hookimpl
    def register_agents(register):
        register(MyBackend())
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import pluggy

from orchestrator_core.models import (
    IDENTITY_SOURCES,
    AgentConfig,
    AgentIdentity,
    AgentReply,
    CheckResult,
    Critique,
    Proposal,
    Task,
)

PROJECT_NAME = "orchestrator"

log = logging.getLogger(__name__)

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@runtime_checkable
class Agent(Protocol):
    """One council member. Each method is one model call; all are async and cancellable."""

    agent_id: str

    async def generate(self, task: Task) -> AgentReply:
        """Write a proposal for the task."""
        ...

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        """Critique a peer's proposal against the task's rubric."""
        ...

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        """Revise one's own proposal with the critiques it received."""
        ...


@runtime_checkable
class SelectingAgent(Agent, Protocol):
    """An agent that can also choose a winner among candidates (an ARCHITECT's job)."""

    async def select(self, task: Task, candidates: Sequence[Proposal]) -> AgentReply:
        """Choose one candidate and say why; :mod:`orchestrator_core.selection` parses the reply."""
        ...


@runtime_checkable
class DescribedAgent(Agent, Protocol):
    """An agent that can say what it runs. Optional: records show empty fields without it.

    ``describe()`` returns an :class:`~orchestrator_core.models.AgentIdentity`: the model,
    the endpoint (a URL without credentials, or the program of a command backend) and
    ``source``, "options" when the council's options named the model or the endpoint, or
    "settings" when both came from the backend's own settings (``ORCH_<BACKEND>_*``) or
    defaults. It is called once per agent when a deliberation starts, must not block, and
    must never return a secret.
    """

    def describe(self) -> AgentIdentity:
        """What this agent runs and where that came from."""
        ...


def identity_of(agent: object) -> AgentIdentity:
    """``agent.describe()`` when it has one and it works; otherwise an empty identity.

    A plugin's broken ``describe`` is logged and costs only the record's detail, never the
    deliberation.
    """
    describe = getattr(agent, "describe", None)
    if not callable(describe):
        return AgentIdentity()
    try:
        identity = describe()
    except Exception as exc:
        log.warning("%s: describe() failed: %s: %s", getattr(agent, "agent_id", "agent"), type(exc).__name__, exc)
        return AgentIdentity()
    if not isinstance(identity, AgentIdentity):
        return AgentIdentity()
    source = identity.source if identity.source in IDENTITY_SOURCES else ""
    return AgentIdentity(model=str(identity.model), endpoint=str(identity.endpoint), source=source)


@runtime_checkable
class AgentBackend(Protocol):
    """A source of agents, e.g. an OpenAI-compatible endpoint."""

    name: str

    def create(self, config: AgentConfig) -> Agent:
        """Build one agent; raise ValueError when the options are unusable."""
        ...


@runtime_checkable
class Check(Protocol):
    """A machine check of a proposal: policy, lint, dry-run, or any other kind."""

    name: str
    kind: str

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        """Judge the proposal; score in [0, 1]."""
        ...


RegisterAgentBackend = Callable[[AgentBackend], None]
RegisterCheck = Callable[[Check], None]


@hookspec
def register_agents(register: RegisterAgentBackend) -> None:
    """Register agent backends: call ``register(backend)`` once for each."""


@hookspec
def register_checks(register: RegisterCheck) -> None:
    """Register checks: call ``register(check)`` once for each."""
