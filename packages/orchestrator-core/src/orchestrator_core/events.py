"""Events a deliberation emits as it goes: what a progress display follows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator_core.models import (
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
    proposal_id: str
    result: CheckResult


@dataclass(frozen=True)
class AgentFailed:
    failure: AgentFailure


@dataclass(frozen=True)
class RankingReady:
    outcome: DeliberationOutcome


DeliberationEvent = (
    DeliberationStarted
    | ProposalGenerated
    | CritiqueWritten
    | ProposalRevised
    | CheckCompleted
    | AgentFailed
    | RankingReady
)

EventSink = Callable[[DeliberationEvent], None]
"""Receives events synchronously, on the event loop; it must not block."""


def discard_event(event: DeliberationEvent) -> None:
    """An EventSink for callers that do not follow progress."""
