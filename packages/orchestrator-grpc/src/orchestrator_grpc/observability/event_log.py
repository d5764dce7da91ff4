"""One structured log line per event that matters in a deliberation, on the
``orchestrator.events`` logger.

Each line has a readable message and its fields as ``extra`` (the JSON format shows them as
keys; see :mod:`.log_format`), ``event`` naming what happened:

========================  ==========================================================  =====================
event                     fields                                                      level
========================  ==========================================================  =====================
``deliberation_started``  kind, agents, rounds                                        INFO
``deliberation_finished`` kind, status, error_kind, duration_seconds, rounds_run,     INFO when succeeded,
                          viable_proposals, input_tokens, output_tokens               else WARNING
``agent_call_finished``   agent_id, backend, model, response_model, phase, round,     DEBUG when ok, INFO
                          outcome, duration_seconds, input_tokens, output_tokens,     when ok but truncated
                          truncated                                                   or cancelled, else
                                                                                      WARNING
``check_finished``        check, check_kind, proposal_id, outcome, duration_seconds,  DEBUG when passed,
                          waited_seconds                                              failed or cancelled,
                                                                                      WARNING on a timeout
                                                                                      or an error
``phase_finished``        phase, round, duration_seconds                              DEBUG
========================  ==========================================================  =====================

Every line also has ``deliberation_id`` and ``role``. The levels: an operator at INFO sees
one line as each deliberation starts and one as it ends, and every call or check that went
wrong; a call that answered is one of (agents x (1 + 2 x rounds)) per deliberation, which
metrics and traces already count and time, so it is DEBUG. A check that *fails* a proposal
is the checks doing their job (DEBUG); one that times out or errs is not (WARNING). A call
cancelled because its deliberation ended is INFO: the deliberation's own WARNING says why,
and these lines say which calls were still running.

The scopes also bind their ids (as :class:`.log_fields` does) for the lines logged inside them, so
the core's own warnings (an agent that timed out, a check's bug) carry the deliberation id,
and within an agent call its agent id and phase.

Nothing of the task's text, of a reply or of an error message is logged here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from orchestrator_core.models import CallOutcome
from orchestrator_core.telemetry import AgentCallScope, CheckScope, DeliberationScope, PhaseScope, Telemetry
from orchestrator_grpc.observability.log_format import BoundFields

EVENTS_LOGGER = "orchestrator.events"

_CHECK_PROBLEMS = frozenset({"timeout", "error"})

S = TypeVar("S")


class EventLog(Telemetry):
    """Logs each deliberation as it starts and ends, and each agent call, check and phase as
    it ends, on ``logger`` (``orchestrator.events``)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger if logger is not None else logging.getLogger(EVENTS_LOGGER)

    def deliberation(self, scope: DeliberationScope) -> AbstractContextManager[None]:
        return _LoggedDeliberation(self, scope)

    def phase(self, scope: PhaseScope) -> AbstractContextManager[None]:
        return _LoggedPhase(self, scope)

    def agent_call(self, scope: AgentCallScope) -> AbstractContextManager[None]:
        return _LoggedCall(self, scope)

    def check(self, scope: CheckScope) -> AbstractContextManager[None]:
        return _LoggedCheck(self, scope)

    def _deliberation_started(self, scope: DeliberationScope) -> None:
        self.log.info(
            "%s started: role %s, %d agents, %d rounds", scope.kind, scope.role, scope.num_agents, scope.rounds,
            extra={
                "event": "deliberation_started", "deliberation_id": scope.deliberation_id, "role": scope.role,
                "kind": scope.kind, "agents": scope.num_agents, "rounds": scope.rounds,
            },
        )

    def _deliberation_finished(self, scope: DeliberationScope, seconds: float) -> None:
        succeeded = scope.status == "succeeded"
        level = logging.INFO if succeeded else logging.WARNING
        if not self.log.isEnabledFor(level):
            return
        self.log.log(
            level,
            "%s %s%s in %.3fs: %d rounds run, %d viable proposals, %d+%d tokens",
            scope.kind, scope.status, f" ({scope.error_kind})" if scope.error_kind else "", seconds,
            scope.rounds_run, scope.viable_proposals, scope.usage.prompt_tokens,
            scope.usage.completion_tokens,
            extra={
                "event": "deliberation_finished", "deliberation_id": scope.deliberation_id, "role": scope.role,
                "kind": scope.kind, "status": scope.status, "error_kind": scope.error_kind,
                "duration_seconds": seconds, "rounds_run": scope.rounds_run,
                "viable_proposals": scope.viable_proposals, "input_tokens": scope.usage.prompt_tokens,
                "output_tokens": scope.usage.completion_tokens,
            },
        )

    def _phase_finished(self, scope: PhaseScope, seconds: float) -> None:
        self.log.debug(
            "phase %s%s ended in %.3fs", scope.phase, _round(scope.round), seconds,
            extra={
                "event": "phase_finished", "deliberation_id": scope.deliberation_id, "role": scope.role,
                "phase": scope.phase, "round": scope.round, "duration_seconds": seconds,
            },
        )

    def _call_finished(self, scope: AgentCallScope, level: int, seconds: float) -> None:
        model = scope.response_model or scope.model
        self.log.log(
            level,
            "agent %s %s%s %s in %.3fs (%s%s): %d+%d tokens%s",
            scope.agent_id, scope.phase.value, _round(scope.round), scope.outcome.value, seconds, scope.backend,
            f", {model}" if model else "", scope.usage.prompt_tokens, scope.usage.completion_tokens,
            ", truncated" if scope.truncated else "",
            extra={
                "event": "agent_call_finished", "deliberation_id": scope.deliberation_id, "role": scope.role,
                "agent_id": scope.agent_id, "backend": scope.backend, "model": scope.model,
                "response_model": scope.response_model, "phase": scope.phase.value, "round": scope.round,
                "outcome": scope.outcome.value, "duration_seconds": seconds,
                "input_tokens": scope.usage.prompt_tokens, "output_tokens": scope.usage.completion_tokens,
                "truncated": scope.truncated,
            },
        )

    def _check_finished(self, scope: CheckScope, level: int, seconds: float) -> None:
        self.log.log(
            level,
            "check %s of proposal %s %s in %.3fs%s",
            scope.check, scope.proposal_id, scope.outcome, seconds,
            f" (after {scope.waited_seconds:.3f}s waiting for a slot)" if scope.waited_seconds else "",
            extra={
                "event": "check_finished", "deliberation_id": scope.deliberation_id,
                "role": scope.role, "check": scope.check, "check_kind": scope.kind,
                "proposal_id": scope.proposal_id, "outcome": scope.outcome,
                "duration_seconds": seconds, "waited_seconds": scope.waited_seconds,
            },
        )


class _Logged(BoundFields, Generic[S]):
    """A scope under the event log: its ids bound to what is logged inside it (:meth:`ids`,
    read only when a line is), and :meth:`_ended` told how long it took (classes rather
    than generators: they wrap every deliberation, phase, call and check, and with a line's
    level off they cost the level's check and a context variable's set and reset)."""

    __slots__ = ("_log", "_scope", "_started")

    def __init__(self, log: EventLog, scope: S) -> None:
        self._outer = self._token = None  # BoundFields' own, set here: one call less per scope
        self._log = log
        self._scope = scope
        self._started = 0.0

    def __enter__(self) -> None:
        self.bind()
        self._started = time.monotonic()

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._ended(time.monotonic() - self._started)
        finally:
            self.unbind()

    def _ended(self, seconds: float) -> None:
        raise NotImplementedError


class _LoggedDeliberation(_Logged[DeliberationScope]):
    """A deliberation: a line as it starts and one as it ends."""

    __slots__ = ()

    def ids(self) -> Iterable[tuple[str, str]]:
        return (("deliberation_id", self._scope.deliberation_id), ("role", self._scope.role))

    def __enter__(self) -> None:
        self.bind()
        try:
            if self._log.log.isEnabledFor(logging.INFO):
                self._log._deliberation_started(self._scope)
        except BaseException:
            self.unbind()
            raise
        self._started = time.monotonic()

    def _ended(self, seconds: float) -> None:
        self._log._deliberation_finished(self._scope, seconds)


class _LoggedPhase(_Logged[PhaseScope]):
    """A phase: a DEBUG line when it ends."""

    __slots__ = ()

    def ids(self) -> Iterable[tuple[str, str]]:
        scope = self._scope
        return (("deliberation_id", scope.deliberation_id), ("role", scope.role), ("phase", scope.phase))

    def _ended(self, seconds: float) -> None:
        if self._log.log.isEnabledFor(logging.DEBUG):
            self._log._phase_finished(self._scope, seconds)


class _LoggedCheck(_Logged[CheckScope]):
    """A check: a line when it ends (WARNING on a timeout or an error, else DEBUG), its time
    without the wait for a slot."""

    __slots__ = ()

    def ids(self) -> Iterable[tuple[str, str]]:
        return (("deliberation_id", self._scope.deliberation_id), ("role", self._scope.role))

    def _ended(self, seconds: float) -> None:
        scope = self._scope
        level = logging.WARNING if scope.outcome in _CHECK_PROBLEMS else logging.DEBUG
        if self._log.log.isEnabledFor(level):
            self._log._check_finished(scope, level, max(0.0, seconds - scope.waited_seconds))


class _LoggedCall(_Logged[AgentCallScope]):
    """One agent call: a line when it ends, at the level its outcome calls for."""

    __slots__ = ()

    def ids(self) -> Iterable[tuple[str, str]]:
        scope = self._scope
        return (
            ("deliberation_id", scope.deliberation_id),
            ("role", scope.role),
            ("agent_id", scope.agent_id),
            ("phase", scope.phase.value),
        )

    def _ended(self, seconds: float) -> None:
        level = _call_level(self._scope)
        if self._log.log.isEnabledFor(level):
            self._log._call_finished(self._scope, level, seconds)


def _call_level(scope: AgentCallScope) -> int:
    if scope.outcome is CallOutcome.OK:
        return logging.INFO if scope.truncated else logging.DEBUG
    if scope.outcome is CallOutcome.CANCELLED:
        return logging.INFO
    return logging.WARNING


def _round(number: int) -> str:
    return f" round {number}" if number else ""
