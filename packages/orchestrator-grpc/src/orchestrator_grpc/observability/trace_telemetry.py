"""The spans of a deliberation: itself, its phases, its agent calls and its checks.

Each span is current while its work runs, so the tree follows the work: the RPC's span
(:mod:`.rpc_spans`) holds the deliberation's, which holds its phases, which hold their agent
calls and checks (the engine runs a phase's calls in tasks, which inherit the phase's span);
whatever a backend traces itself (an HTTP request) lands under its agent call.

- deliberation, ``{kind} {role}`` (e.g. "deliberate DEV"): ``orchestrator.deliberation.id``,
  ``orchestrator.role``, ``orchestrator.kind``, ``orchestrator.agents``,
  ``orchestrator.rounds``; at the end ``orchestrator.status``, ``orchestrator.error_kind``,
  ``orchestrator.rounds_run``, ``orchestrator.viable_proposals`` and the tokens spent
  (``gen_ai.usage.input_tokens``/``output_tokens``); ERROR unless it succeeded.
- phase, named for it ("generate", "critique", "revise", "check", "select"):
  ``orchestrator.phase``, ``orchestrator.round`` (0 outside the rounds).
- agent call: the GenAI conventions' inference span (:mod:`.genai`).
- check, ``check {name}``: ``orchestrator.check.name``, ``orchestrator.check.kind``,
  ``orchestrator.proposal.id``, ``orchestrator.check.outcome``,
  ``orchestrator.check.slot_wait_seconds``; ERROR when it timed out, failed to run or was
  cancelled (a proposal failing a check is the check working).

Failures set ``error.type``: the error's kind for a deliberation, the outcome (timeout,
error, bug, cancelled) for an agent call or a check, the exception's name for a phase.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from orchestrator_core.models import CallOutcome
from orchestrator_core.telemetry import AgentCallScope, CheckScope, DeliberationScope, PhaseScope, Telemetry
from orchestrator_grpc.observability import genai

Attributes = Mapping[str, genai.AttributeValue]
Finish = Callable[[Span, BaseException | None], None]
_CHECK_FAILURES = frozenset({"timeout", "error", "cancelled"})


class TracingTelemetry(Telemetry):
    """Makes a span of each scope the core opens (prompts and replies only with ``trace_content``)."""

    def __init__(self, tracer: trace.Tracer, *, trace_content: bool = False) -> None:
        self.tracer = tracer
        self.trace_content = trace_content

    def deliberation(self, scope: DeliberationScope) -> AbstractContextManager[None]:
        attributes: Attributes = {
            "orchestrator.deliberation.id": scope.deliberation_id,
            "orchestrator.role": scope.role,
            "orchestrator.kind": scope.kind,
            "orchestrator.agents": scope.num_agents,
            "orchestrator.rounds": scope.rounds,
        }

        def finish(span: Span, error: BaseException | None) -> None:
            span.set_attributes({
                "orchestrator.status": scope.status,
                "orchestrator.rounds_run": scope.rounds_run,
                "orchestrator.viable_proposals": scope.viable_proposals,
                "gen_ai.usage.input_tokens": scope.usage.prompt_tokens,
                "gen_ai.usage.output_tokens": scope.usage.completion_tokens,
            })
            if scope.error_kind:
                span.set_attribute("orchestrator.error_kind", scope.error_kind)
            if scope.status != "succeeded":
                _failed(span, scope.error_kind or _error_type(error) or scope.status)

        return self._span(f"{scope.kind} {scope.role}", SpanKind.INTERNAL, attributes, finish)

    def phase(self, scope: PhaseScope) -> AbstractContextManager[None]:
        attributes: Attributes = {
            "orchestrator.deliberation.id": scope.deliberation_id,
            "orchestrator.role": scope.role,
            "orchestrator.phase": scope.phase,
            "orchestrator.round": scope.round,
        }

        def finish(span: Span, error: BaseException | None) -> None:
            if error is not None:
                _failed(span, _error_type(error))

        return self._span(scope.phase, SpanKind.INTERNAL, attributes, finish)

    def agent_call(self, scope: AgentCallScope) -> AbstractContextManager[None]:
        content = self.trace_content

        def finish(span: Span, error: BaseException | None) -> None:
            span.set_attributes(genai.response_attributes(scope, trace_content=content))
            if scope.outcome is not CallOutcome.OK:
                span.set_status(Status(StatusCode.ERROR, scope.error or scope.outcome.value))

        attributes = genai.request_attributes(scope, trace_content=content)
        return self._span(genai.span_name(scope), SpanKind.CLIENT, attributes, finish)

    def check(self, scope: CheckScope) -> AbstractContextManager[None]:
        attributes: Attributes = {
            "orchestrator.deliberation.id": scope.deliberation_id,
            "orchestrator.role": scope.role,
            "orchestrator.check.name": scope.check,
            "orchestrator.check.kind": scope.kind,
            "orchestrator.proposal.id": scope.proposal_id,
        }

        def finish(span: Span, error: BaseException | None) -> None:
            span.set_attributes({
                "orchestrator.check.outcome": scope.outcome,
                "orchestrator.check.slot_wait_seconds": scope.waited_seconds,
            })
            if scope.outcome in _CHECK_FAILURES:
                _failed(span, scope.outcome)

        return self._span(f"check {scope.check}", SpanKind.INTERNAL, attributes, finish)

    @contextmanager
    def _span(
        self, name: str, kind: SpanKind, attributes: Attributes, finish: Finish
    ) -> Iterator[None]:
        """A span, current for the block; ``finish`` sets how it ended before it ends."""
        span = self.tracer.start_span(name, kind=kind, attributes=attributes)
        error: BaseException | None = None
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            try:
                yield
            except BaseException as exc:
                error = exc
                raise
            finally:
                finish(span, error)
                span.end()


def _failed(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR))


def _error_type(error: BaseException | None) -> str:
    if error is None:
        return ""
    return "cancelled" if isinstance(error, asyncio.CancelledError) else type(error).__name__
