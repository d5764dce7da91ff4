"""A deliberation's events, read from its record in one canonical order, so a watcher on any
replica, starting at any point, sees the same numbered events.

The order: for each agent call of ``record.calls`` in the order they ended, the event that
call produced — ProposalGenerated, CritiqueWritten or ProposalRevised for a call that
succeeded, AgentFailed for one that failed — stopping at the first call whose product is
not in the record yet (it comes with a later write); then each check in the order it
completed; then the ranking once the outcome exists. A call cut short (outcome cancelled)
and the selection's calls produce no event; a call made again by a resumed run (its first
product never reached the record) has its event once, at the first call's place. The
sequence number of an event is its index + 1. A record only ever grows, so the events of a
later read start with those of an earlier one.
"""

from __future__ import annotations

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
from orchestrator_core.journal import revision_numbers
from orchestrator_core.models import CallOutcome, Phase
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
    """Each call's event; None for the first call whose product the record lacks.

    A call is known by its agent, phase and round. A resumed run makes again a call whose
    product did not reach the record, so a key may appear twice in ``record.calls``: its
    event comes once, at its first place, whichever of its calls produced it."""
    proposals = {(p.author_id, p.revision): p for p in record.proposals}
    critiques = {(c.critic_id, c.round): c for c in record.critiques}
    failures = {(f.agent_id, f.phase, f.round): f for f in record.failures}
    revisions = revision_numbers(record.calls)
    seen: set[tuple[str, Phase, int]] = set()
    for call in record.calls:
        key = (call.agent_id, call.phase, call.round)
        if call.phase is Phase.SELECT or call.outcome is CallOutcome.CANCELLED or key in seen:
            continue
        event: DeliberationEvent | None = None
        if key in failures:
            event = AgentFailed(failures[key])
        elif call.phase is Phase.GENERATE and (call.agent_id, 0) in proposals:
            event = ProposalGenerated(proposals[(call.agent_id, 0)])
        elif call.phase is Phase.CRITIQUE and (call.agent_id, call.round) in critiques:
            event = CritiqueWritten(critiques[(call.agent_id, call.round)])
        elif call.phase is Phase.REVISE:
            revision = revisions.get((call.agent_id, call.round))
            if revision is not None and (call.agent_id, revision) in proposals:
                event = ProposalRevised(proposals[(call.agent_id, revision)])
        if event is None:
            yield None
            return
        seen.add(key)
        yield event
