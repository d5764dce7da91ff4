"""What the core tells its observers (metrics, traces, logs) as a deliberation runs.

The engine opens a scope around each deliberation, phase, agent call and check, and fills in
how it ended before the scope closes. :class:`Telemetry` is the hook: its methods return a
context manager the engine enters around the work, so an observer can time it, or make it the
current span of a trace (the agent call's own work, e.g. an HTTP request, runs inside it).

The base class observes nothing and costs one method call per scope; observers subclass it,
and :class:`TelemetryChain` runs several. The scopes carry only what is safe to show an
operator: ids, role, backend, model, phase, outcomes and token counts. The texts (the task,
a reply) ride along for an observer whose setting opts in to showing them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field

from orchestrator_core.models import CallOutcome, Phase, TokenUsage

__all__ = [
    "NOTHING",
    "NO_TELEMETRY",
    "NO_USAGE",
    "AgentCallScope",
    "CheckScope",
    "DeliberationScope",
    "PhaseScope",
    "Telemetry",
    "TelemetryChain",
]

NOTHING: AbstractContextManager[None] = contextlib.nullcontext()
"""Reusable: a nullcontext may be entered any number of times, at once or in turn."""
NO_USAGE = TokenUsage()
"""The usage of a call that has reported none (immutable, so one serves every scope)."""


@dataclass
class DeliberationScope:
    """One deliberation or orchestration; the last five fields are set before it closes.

    ``status`` is the record's final status ("succeeded", "failed", "cancelled");
    ``error_kind`` the failure's kind (e.g. "QuorumLost", "DeadlineExceeded")."""

    deliberation_id: str
    kind: str
    """"deliberate" or "orchestrate"."""
    role: str
    num_agents: int
    rounds: int
    status: str = "cancelled"
    error_kind: str = ""
    rounds_run: int = 0
    viable_proposals: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)


@dataclass(frozen=True)
class PhaseScope:
    """One phase: generate, critique, revise, check or select (``round`` from 1 for the
    critique/revise rounds, 0 for the others)."""

    deliberation_id: str
    role: str
    phase: str
    round: int


@dataclass
class AgentCallScope:
    """One agent call; the fields after ``round`` are set before it closes."""

    deliberation_id: str
    role: str
    agent_id: str
    backend: str
    model: str
    """The model the agent was configured with (empty when its backend does not say)."""
    phase: Phase
    round: int
    task: str = ""
    """The task's text: for an observer that opts in to showing prompts."""
    outcome: CallOutcome = CallOutcome.CANCELLED
    usage: TokenUsage = NO_USAGE
    truncated: bool = False
    response_model: str = ""
    """The model that answered, as the model server named it."""
    reply: str = ""
    """The reply's text: for an observer that opts in to showing replies."""
    error: str = ""


@dataclass
class CheckScope:
    """One check of one proposal; ``outcome`` ("passed", "failed", "timeout", "error") and
    ``waited_seconds`` (for a heavy-check slot) are set before it closes."""

    deliberation_id: str
    role: str
    check: str
    kind: str
    proposal_id: str
    outcome: str = "cancelled"
    waited_seconds: float = 0.0


class Telemetry:
    """Observes nothing: the default, and the base of every observer."""

    def deliberation(self, scope: DeliberationScope) -> AbstractContextManager[None]:
        return NOTHING

    def phase(self, scope: PhaseScope) -> AbstractContextManager[None]:
        return NOTHING

    def agent_call(self, scope: AgentCallScope) -> AbstractContextManager[None]:
        return NOTHING

    def check(self, scope: CheckScope) -> AbstractContextManager[None]:
        return NOTHING


NO_TELEMETRY = Telemetry()


class TelemetryChain(Telemetry):
    """Several observers, entered in order around the same scope (and left in reverse)."""

    def __init__(self, observers: Sequence[Telemetry]) -> None:
        self.observers = tuple(observers)

    def deliberation(self, scope: DeliberationScope) -> AbstractContextManager[None]:
        return _all(o.deliberation(scope) for o in self.observers)

    def phase(self, scope: PhaseScope) -> AbstractContextManager[None]:
        return _all(o.phase(scope) for o in self.observers)

    def agent_call(self, scope: AgentCallScope) -> AbstractContextManager[None]:
        return _all(o.agent_call(scope) for o in self.observers)

    def check(self, scope: CheckScope) -> AbstractContextManager[None]:
        return _all(o.check(scope) for o in self.observers)


def chained(observers: Sequence[Telemetry]) -> Telemetry:
    """One Telemetry for ``observers``: none observes nothing, one is itself."""
    if not observers:
        return NO_TELEMETRY
    if len(observers) == 1:
        return observers[0]
    return TelemetryChain(observers)


@contextlib.contextmanager
def _all(managers: Iterator[AbstractContextManager[None]]) -> Iterator[None]:
    with ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        yield
