"""One agent call, made the same way wherever the core makes one: the deliberation's
phases and the selection of a winner.

The call is bounded by the agent timeout, and the backend sees that bound as its deadline
(:mod:`orchestrator_core.deadlines`), so it can plan retries within it. A call the timeout
ends is reported to the agent's circuit breaker, when it has one. A reply must be an
:class:`~orchestrator_core.models.AgentReply` with some text. Whatever goes wrong is raised
as :class:`AgentCallFailed`, carrying the :class:`~orchestrator_core.models.AgentFailure`
the record keeps; the caller decides what one agent's failure means for the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from orchestrator_core.deadlines import call_deadline
from orchestrator_core.errors import AgentError
from orchestrator_core.hookspecs import Agent
from orchestrator_core.models import AgentFailure, AgentReply, Phase, TokenUsage


class AgentCallFailed(Exception):
    """An agent call failed. ``failure`` is what the record keeps; ``cause`` the agent's own
    error (None for a timeout or a plugin's bug); ``usage`` what a reply that proved unusable
    still cost (nothing when the call returned none)."""

    def __init__(self, failure: AgentFailure, cause: AgentError | None, usage: TokenUsage) -> None:
        super().__init__(failure.error)
        self.failure = failure
        self.cause = cause
        self.usage = usage


async def call_agent(
    agent: Agent,
    phase: Phase,
    call: Callable[[], Awaitable[AgentReply]],
    *,
    timeout_seconds: float,
    round_number: int = 0,
) -> AgentReply:
    """Make one call of ``agent`` (``call``, in ``phase``) within ``timeout_seconds``; raises
    AgentCallFailed when it fails, times out or returns no usable reply."""
    cause: AgentError | None = None
    usage = TokenUsage()
    try:
        with call_deadline(timeout_seconds):
            async with asyncio.timeout(timeout_seconds):
                reply = await call()
        if not isinstance(reply, AgentReply):
            raise TypeError(f"returned {type(reply).__name__}, not an AgentReply")
        usage = reply.usage
        if not reply.text.strip():
            raise AgentError("returned an empty reply")
        return reply
    except TimeoutError:
        error = f"timed out after {timeout_seconds:g}s"
        report_timeout(agent)
    except AgentError as exc:
        error, cause = str(exc), exc
    except Exception as exc:  # a plugin's bug must not sink the caller
        error = f"{type(exc).__name__}: {exc}"
    failure = AgentFailure(agent_id=agent.agent_id, phase=phase, error=error, round=round_number)
    raise AgentCallFailed(failure, cause, usage)


def report_timeout(agent: object) -> None:
    """Tell an agent that can use it (one behind a circuit breaker) that a call of it timed out."""
    on_timeout = getattr(agent, "on_timeout", None)
    if callable(on_timeout):
        on_timeout()
