"""A deliberation's events, read from its record in one canonical order, so a watcher on any
replica, starting at any point, sees the same numbered events.

The order: for each agent call of ``record.calls`` in the order they ended, the event that
call produced — ProposalGenerated, CritiqueWritten or ProposalRevised for a call that
succeeded, AgentFailed for one that failed — stopping at the first call whose product is
not in the record yet (it comes with a later write); then each check in the order it
completed; then the ranking once the outcome exists. A call cut short (outcome cancelled)
and the selection's calls produce no event. The sequence number of an event is its index
+ 1. A record only ever grows, so the events of a later read start with those of an
earlier one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from orchestrator_core.events import (
    AgentFailed,
    CheckCompleted,
    CritiqueWritten,
    DeliberationEvent,
    DeliberationFinished,
    ProposalGenerated,
    ProposalRevised,
    RankingReady,
)
from orchestrator_core.models import AgentCall, CallOutcome, Phase
from orchestrator_core.records.model import DeliberationRecord


def events_of(record: DeliberationRecord) -> list[DeliberationEvent]:
    """The events the record holds so far, in canonical order (see the module docstring)."""
    events: list[DeliberationEvent] = []
    complete = True
    for event in _call_events(record):
        if event is None:
            complete = False
            break
        events.append(event)
    if not complete:
        return events
    events.extend(CheckCompleted(c.proposal_id, c.result, c.started_at, c.finished_at) for c in record.checks)
    if record.outcome is not None:
        events.append(RankingReady(record.outcome))
    return events


def finished_event(record: DeliberationRecord) -> DeliberationFinished:
    """The event that ends a watch of a final record."""
    return DeliberationFinished(record.status.value, record.error, record.error_kind)


def _call_events(record: DeliberationRecord) -> Iterator[DeliberationEvent | None]:
    """Each call's event; None for the first call whose product the record lacks."""
    revisions: Counter[str] = Counter()
    for call in record.calls:
        if call.phase is Phase.SELECT or call.outcome is CallOutcome.CANCELLED:
            continue
        if call.outcome is not CallOutcome.OK:
            yield _failure_event(record, call)
            continue
        if call.phase is Phase.GENERATE:
            yield _proposal_event(record, call.agent_id, 0)
        elif call.phase is Phase.CRITIQUE:
            yield _critique_event(record, call)
        else:  # a revision: the n-th revise call of an agent made its revision n
            revisions[call.agent_id] += 1
            yield _proposal_event(record, call.agent_id, revisions[call.agent_id])


def _failure_event(record: DeliberationRecord, call: AgentCall) -> DeliberationEvent | None:
    for failure in record.failures:
        if (failure.agent_id, failure.phase, failure.round) == (call.agent_id, call.phase, call.round):
            return AgentFailed(failure)
    return None


def _proposal_event(record: DeliberationRecord, agent_id: str, revision: int) -> DeliberationEvent | None:
    for proposal in record.proposals:
        if proposal.author_id == agent_id and proposal.revision == revision:
            return ProposalGenerated(proposal) if revision == 0 else ProposalRevised(proposal)
    return None


def _critique_event(record: DeliberationRecord, call: AgentCall) -> DeliberationEvent | None:
    for critique in record.critiques:
        if critique.critic_id == call.agent_id and critique.round == call.round:
            return CritiqueWritten(critique)
    return None
