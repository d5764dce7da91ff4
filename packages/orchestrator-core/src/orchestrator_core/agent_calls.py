"""One agent call, made the same way wherever the core makes one: the deliberation's
phases (:class:`~orchestrator_core.phase_calls.PhaseCalls`, with the functions here and one
deadline per phase) and the selection of a winner (:func:`call_agent`).

The call is bounded by the agent timeout, and the backend sees that bound as its deadline
(:mod:`orchestrator_core.deadlines`), so it can plan retries within it. A call the timeout
ends is reported to the agent's circuit breaker, when it has one. A reply must be an
:class:`~orchestrator_core.models.AgentReply` with some text. Whatever goes wrong is raised
as :class:`AgentCallFailed`, carrying the :class:`~orchestrator_core.models.AgentFailure`
the record keeps; the caller decides what one agent's failure means for the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from orchestrator_core.deadlines import call_deadline
from orchestrator_core.errors import AgentError
from orchestrator_core.hookspecs import Agent
from orchestrator_core.models import AgentCall, AgentFailure, AgentReply, CallOutcome, Phase, TokenUsage
from orchestrator_core.plugin_calls import BACKEND, Budget, PluginCall, count_failure, log_plugin_bug, plugin_call
from orchestrator_core.telemetry import NO_TELEMETRY, AgentCallScope, Telemetry

log = logging.getLogger(__name__)

AGENT_TIMEOUT_SETTING = "ORCH_AGENT_TIMEOUT_SECONDS"
TASK_AGENT_TIMEOUT = "the task's constraints.agent_timeout_seconds"


class AgentCallFailed(Exception):
    """An agent call failed. ``failure`` is what the record keeps; ``cause`` the agent's own
    error (None for a timeout or a plugin's bug); ``usage`` what a reply that proved unusable
    still cost (nothing when the call returned none); ``plugin_bug`` says the backend's code
    failed in a way its contract does not allow (logged with its traceback)."""

    def __init__(
        self, failure: AgentFailure, cause: AgentError | None, usage: TokenUsage, *, plugin_bug: bool = False
    ) -> None:
        super().__init__(failure.error)
        self.failure = failure
        self.cause = cause
        self.usage = usage
        self.plugin_bug = plugin_bug


def backend_of(agent: object) -> str:
    """The name of the backend that made ``agent``; when it does not say, its class's name."""
    backend = getattr(agent, "backend", "")
    if isinstance(backend, str) and backend:
        return backend
    inner = getattr(agent, "agent", agent)  # a GuardedAgent's wrapped agent
    return type(inner).__name__


async def call_agent(
    agent: Agent,
    phase: Phase,
    call: Callable[[], Awaitable[AgentReply]],
    *,
    timeout_seconds: float,
    round_number: int = 0,
    timeout_setting: str = AGENT_TIMEOUT_SETTING,
    telemetry: Telemetry = NO_TELEMETRY,
    scope: AgentCallScope | None = None,
    on_call: Callable[[AgentCall], None] | None = None,
) -> AgentReply:
    """Make one call of ``agent`` (``call``, in ``phase``) within ``timeout_seconds`` (the
    bound ``timeout_setting`` names); raises AgentCallFailed when it fails, times out or
    returns no usable reply.

    The call runs inside ``telemetry``'s scope for it (``scope``, filled in with how it ended),
    and ``on_call``, when given, receives its record however it ended, a cancellation included.
    A phase's calls are made the same way by
    :meth:`~orchestrator_core.phase_calls.PhaseCalls.run`, with one deadline for them all.
    """
    if scope is None:
        scope = AgentCallScope("", "", agent.agent_id, backend_of(agent), "", phase, round_number)
    started = time.time()
    failed: AgentCallFailed | None = None
    try:
        with telemetry.agent_call(scope):
            try:
                with call_deadline(timeout_seconds), plugin_call(named_call(scope)):
                    async with Budget(timeout_seconds):
                        reply = await call()
                return accepted(reply, scope)
            except Exception as exc:
                failed = failure_of(agent, exc, scope, timeout_seconds, timeout_setting)
    finally:
        if on_call is not None:
            on_call(record_of(scope, started))
    assert failed is not None  # the call returned, or failed with this
    raise failed


def named_call(scope: AgentCallScope) -> PluginCall:
    """The plugin call an agent call is, for the watchdog and the failure counters."""
    return PluginCall(BACKEND, scope.backend, scope.phase.value, scope.agent_id)


def accepted(reply: object, scope: AgentCallScope) -> AgentReply:
    """``reply`` when it is usable, noted in ``scope`` (usage, truncation, model, text, OK);
    raises when the agent returned something else or an empty text."""
    if not isinstance(reply, AgentReply):
        raise _Unusable(f"returned {type(reply).__name__}, not an AgentReply")
    scope.usage, scope.truncated, scope.response_model = reply.usage, reply.truncated, reply.model
    if not reply.text.strip():
        raise AgentError("returned an empty reply")
    scope.outcome, scope.reply = CallOutcome.OK, reply.text
    return reply


def failure_of(
    agent: object, error: Exception, scope: AgentCallScope, timeout_seconds: float, timeout_setting: str
) -> AgentCallFailed:
    """What an agent call that raised ``error`` (a TimeoutError when its bound ended it)
    becomes: logged, counted against its plugin (a timeout also told to the agent's breaker),
    its outcome and error noted in ``scope``."""
    named = named_call(scope)
    cause: AgentError | None = None
    bug = False
    if isinstance(error, TimeoutError):
        message = (
            f"timed out after {timeout_seconds:g}s ({named.plugin}, agent {scope.agent_id} {named.call}; "
            f"bound: {timeout_setting})"
        )
        log.warning("%s", message)
        count_failure(named, "timeouts")
        report_timeout(agent)
        scope.outcome = CallOutcome.TIMEOUT
    elif isinstance(error, AgentError):
        message, cause = str(error), error
        log.warning("%s failed: %s", named, message)
        log.debug("%s failed", named, exc_info=error)
        count_failure(named, "errors")
        scope.outcome = CallOutcome.ERROR
    else:  # a plugin's bug must not sink the caller
        bug = True
        shown = "TypeError" if isinstance(error, _Unusable) else type(error).__name__
        message = f"{shown}: {error} {named.bug_note}"
        log_plugin_bug(named, error)
        scope.outcome = CallOutcome.BUG
    scope.error = message
    failure = AgentFailure(agent_id=scope.agent_id, phase=scope.phase, error=message, round=scope.round)
    return AgentCallFailed(failure, cause, scope.usage, plugin_bug=bug)


def record_of(scope: AgentCallScope, started: float) -> AgentCall:
    """The record of the call ``scope`` describes, started at ``started`` and ending now
    (built with positional arguments: it is built for every call)."""
    return AgentCall(
        scope.agent_id,
        scope.phase,
        scope.round,
        started,
        time.time(),
        scope.outcome,
        scope.usage,
        scope.truncated,
        scope.model,
        scope.error,
    )


class _Unusable(TypeError):
    """The agent returned something other than an AgentReply."""


def report_timeout(agent: object) -> None:
    """Tell an agent that can use it (one behind a circuit breaker) that a call of it timed out."""
    on_timeout = getattr(agent, "on_timeout", None)
    if callable(on_timeout):
        on_timeout()
