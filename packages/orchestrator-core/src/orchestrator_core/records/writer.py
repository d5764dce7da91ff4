"""Writes one deliberation's record as it goes, off the deliberation's critical path.

The writer follows the engine's events: each one updates the record in memory at once,
and a background task writes the latest state. While a write is in flight further events
only mark the record dirty, so a burst of events costs one write, not one each, and the
deliberation never waits on the database. :meth:`RecordWriter.finish` waits for that task,
then writes the finished record and returns once it is durable.

Phase timings come from the events: a phase's events arrive as its calls return, and
phases run one after another, so a phase runs from the end of the one before (the record's
creation, for the first) to its last event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from orchestrator_core.events import (
    AgentCallFinished,
    AgentFailed,
    CheckCompleted,
    CritiqueWritten,
    DeliberationEvent,
    EventSink,
    ProposalGenerated,
    ProposalRevised,
    RankingReady,
    discard_event,
)
from orchestrator_core.models import Selection, TokenUsage
from orchestrator_core.records.model import DeliberationRecord, PhaseTiming, RecordedCheck, RecordStatus
from orchestrator_core.records.store import DeliberationStore

log = logging.getLogger(__name__)


class RecordWriter:
    """The record of one running deliberation. Only the event loop's thread touches it."""

    def __init__(
        self, store: DeliberationStore, record: DeliberationRecord, forward: EventSink = discard_event
    ) -> None:
        self.record = record
        self._store = store
        self._forward = forward
        self._dirty = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._phases: list[PhaseTiming] = []
        self._phase: tuple[str, int] | None = None
        self._phase_started = record.created_at
        self._phase_last = record.created_at
        self._round = 0
        self.writes = 0
        """Progress writes made so far (finishing not counted)."""

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flush_loop())

    # -- following the deliberation -----------------------------------------------

    def observe(self, event: DeliberationEvent) -> None:
        """An :class:`EventSink`: record the event, then pass it on."""
        record = self.record
        match event:
            case ProposalGenerated(proposal=proposal):
                self._at("generate", 0)
                record = replace(record, proposals=(*record.proposals, proposal))
            case CritiqueWritten(critique=critique):
                self._round = critique.round
                self._at("critique", critique.round)
                record = replace(record, critiques=(*record.critiques, critique))
            case ProposalRevised(proposal=proposal):
                self._at("revise", self._round)
                record = replace(record, proposals=(*record.proposals, proposal))
            case CheckCompleted(proposal_id=proposal_id, result=result, started_at=started, finished_at=finished):
                self._at("check", 0)
                checked = RecordedCheck(proposal_id, result, started, finished)
                record = replace(record, checks=(*record.checks, checked))
            case AgentCallFinished(call=call):
                record = replace(record, calls=(*record.calls, call))
            case AgentFailed(failure=failure):
                self._at(failure.phase.value, failure.round)
                record = replace(record, failures=(*record.failures, failure))
            case RankingReady(outcome=outcome):
                self._at("check", 0)
                record = replace(record, outcome=outcome, usage=outcome.usage)
        self._changed(record)
        self._forward(event)

    def mark_phase(self, phase: str, round_number: int = 0) -> None:
        """A phase the engine's events do not show (the selection) ended now."""
        self._at(phase, round_number)
        self._changed(self.record)

    async def finish(
        self,
        status: RecordStatus,
        *,
        usage: TokenUsage | None = None,
        selection: Selection | None = None,
        error: str = "",
        error_kind: str = "",
    ) -> DeliberationRecord:
        """Stop following, then write the finished record; returns once it is stored.

        The outcome is already in the record, from the ranking event (a run that failed
        before its ranking has none)."""
        await self._stop()
        self._close_phase()
        final = self.record.finished(
            status, time.time(), phases=tuple(self._phases), usage=usage, selection=selection,
            error=error, error_kind=error_kind,
        )
        self.record = final
        await self._store.update(final)
        return final

    # -- internals ----------------------------------------------------------------

    def _at(self, phase: str, round_number: int) -> None:
        now = time.time()
        key = (phase, round_number)
        if self._phase != key:
            if self._phase is not None:
                self._close_phase()
                self._phase_started = self._phase_last
            self._phase = key
        self._phase_last = max(now, self._phase_started)

    def _close_phase(self) -> None:
        if self._phase is not None:
            phase, round_number = self._phase
            self._phases.append(PhaseTiming(phase, round_number, self._phase_started, self._phase_last))
            self._phase = None

    def _current_phases(self) -> tuple[PhaseTiming, ...]:
        if self._phase is None:
            return tuple(self._phases)
        phase, round_number = self._phase
        return (*self._phases, PhaseTiming(phase, round_number, self._phase_started, self._phase_last))

    def _changed(self, record: DeliberationRecord) -> None:
        self.record = replace(record, phases=self._current_phases(), updated_at=time.time())
        self._dirty.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            if self._closing:
                return
            self._dirty.clear()
            try:
                await self._store.update(self.record)
                self.writes += 1
            except Exception as exc:  # progress is best effort; the final write is not
                log.warning("could not write the progress of deliberation %s: %s", self.record.deliberation_id, exc)

    async def _stop(self) -> None:
        self._closing = True
        self._dirty.set()
        if self._task is not None:
            await asyncio.shield(self._task)
