"""Events a deliberation emits as it goes: what a progress display follows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator_core.models import (
    AgentCall,
    AgentFailure,
    CheckResult,
    Critique,
    DeliberationOutcome,
    Proposal,
)


@dataclass(frozen=True)
class DeliberationStarted:
    """The deliberation's record exists: the first event, naming the deliberation."""

    deliberation_id: str


@dataclass(frozen=True)
class ProposalGenerated:
    proposal: Proposal


@dataclass(frozen=True)
class CritiqueWritten:
    critique: Critique


@dataclass(frozen=True)
class ProposalRevised:
    proposal: Proposal


@dataclass(frozen=True)
class CheckCompleted:
    """One check of one proposal finished. ``started_at`` and ``finished_at`` are seconds since
    the Unix epoch (0 when unknown, e.g. an event from a server older than these fields);
    ``started_at`` is when the check began running, after any wait for a heavy-check slot."""

    proposal_id: str
    result: CheckResult
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass(frozen=True)
class AgentCallFinished:
    """One agent call ended, however it ended (its record for the timeline)."""

    call: AgentCall


@dataclass(frozen=True)
class AgentFailed:
    failure: AgentFailure


@dataclass(frozen=True)
class RankingReady:
    outcome: DeliberationOutcome


@dataclass(frozen=True)
class DeliberationFinished:
    """The record is final: the last event a watch of the deliberation sees. ``status`` is
    the record's (a :class:`~orchestrator_core.records.model.RecordStatus` value), with its
    error and error kind when it did not succeed."""

    status: str
    error: str = ""
    error_kind: str = ""


DeliberationEvent = (
    DeliberationStarted
    | ProposalGenerated
    | CritiqueWritten
    | ProposalRevised
    | CheckCompleted
    | AgentFailed
    | AgentCallFinished
    | RankingReady
    | DeliberationFinished
)

EventSink = Callable[[DeliberationEvent], None]
"""Receives events synchronously, on the event loop; it must not block."""


def discard_event(event: DeliberationEvent) -> None:
    """An EventSink for callers that do not follow progress."""
