"""Writes one deliberation's record as it goes, off the deliberation's critical path.

The writer follows the engine's events: each one updates the record in memory at once,
and a background task writes the latest state. While a write is in flight further events
only mark the record dirty, so a burst of events costs one write, not one each, and the
deliberation never waits on the database. :meth:`RecordWriter.finish` waits for that task,
then writes the finished record and returns once it is durable.

With a ``progress_interval`` (a direct run's, :data:`PROGRESS_INTERVAL_SECONDS`) those
progress writes are spaced: the first no sooner than the interval after
:meth:`RecordWriter.start`, each next one no sooner than the interval after the one before
(a timer starts each write's task, so a run that ends sooner runs none).
A deliberation that ends within the interval writes its record twice only (created,
finished), and a longer one about once per interval, whatever its number of events: every
write is a JSON encoding of the whole record and, on disk, a sync. The price: a running
record read from the store (GetDeliberation, ListDeliberations) lags the run by up to the
interval. The finished record is never delayed.

A run that must not lose a completed call (a queued deliberation, which another worker may
resume) awaits :meth:`RecordWriter.flush` after each one: it returns once the record as it
is then is stored (one write at a time; a write in flight is waited for, and covers the
flushes that came while it ran); a flush is never held back by ``progress_interval``. A
write the store refuses (the record is final, or another worker took it over) sets
:attr:`RecordWriter.lost`, and a flush then raises :class:`RecordLost`, so the run stops.

Phase timings come from the events: a phase's events arrive as its calls return, and
phases run one after another, so a phase runs from the end of the one before (the record's
creation, or ``started_at``, for the first) to its last event. A writer built from a record
that already has phases (a resumed run) keeps them: the phase that was running goes on from
where it started, and a new phase starts when the resumed run does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

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
from orchestrator_core.models import DeliberationOutcome, Selection, TokenUsage
from orchestrator_core.records.model import DeliberationRecord, PhaseTiming, RecordedCheck, RecordStatus
from orchestrator_core.records.store import DeliberationStore

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 1.0
"""How often a direct run's progress is written at most (see the module's docstring)."""


class RecordLost(Exception):
    """The store refused to write the record: it is final already, or another worker took it
    over. The run writing it must stop."""


class RecordWriter:
    """The record of one running deliberation. Only the event loop's thread touches it.

    ``on_write``, when given, is called with the record after each write the store accepted
    (progress, flushes and the finished record), e.g. to tell watchers it changed; an error it
    raises is logged. ``started_at`` is when the run began (the first phase starts then);
    by default the record's creation, or now for a record that already has phases.
    ``progress_interval``: the least time between progress writes of the background task,
    none by default (see the module's docstring).
    """

    def __init__(
        self,
        store: DeliberationStore,
        record: DeliberationRecord,
        forward: EventSink = discard_event,
        *,
        on_write: Callable[[DeliberationRecord], None] | None = None,
        started_at: float | None = None,
        progress_interval: float = 0.0,
    ) -> None:
        self._version = 0
        """Changes made to the record so far; ``_written`` is the latest one stored."""
        self._built_version = 0
        self._base = record
        self._added = _no_additions()
        self._outcome: DeliberationOutcome | None = None
        self._updated_at = record.updated_at
        self._store = store
        self._forward = forward
        self._on_write = on_write
        self._dirty = asyncio.Event()
        self._interval = progress_interval
        self._timer: asyncio.TimerHandle | None = None
        """Spaced: when the next progress write may start (see :meth:`_due`)."""
        self._due_on_change = False
        """Spaced: the interval has passed with nothing new; the next change starts a write."""
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._written = 0
        self._phases: list[PhaseTiming] = list(record.phases)
        self._resumed = list(record.phases)
        """The phases of an earlier run: the last one goes on if the next event is of it."""
        self._phase: tuple[str, int] | None = None
        if started_at is None:
            started_at = time.time() if record.phases else record.created_at
        self._phase_started = started_at
        self._phase_last = started_at
        self._round = max((p.round for p in record.phases), default=0)
        self.writes = 0
        """Progress writes made so far (finishing not counted)."""
        self.lost = asyncio.Event()
        """Set once the store refused a write: the record is final, or another worker has it."""

    def start(self) -> None:
        """Start writing progress in the background: at once after each change, or, spaced,
        from a timer (no task until a write is due: a run that ends sooner makes none)."""
        loop = asyncio.get_running_loop()
        if self._interval > 0:
            self._timer = loop.call_later(self._interval, self._due)
        else:
            self._task = loop.create_task(self._flush_loop())

    # -- following the deliberation -----------------------------------------------

    def observe(self, event: DeliberationEvent) -> None:
        """An :class:`EventSink`: record the event, then pass it on."""
        added = self._added
        match event:
            case ProposalGenerated(proposal=proposal):
                self._at("generate", 0)
                added["proposals"].append(proposal)
            case CritiqueWritten(critique=critique):
                self._round = critique.round
                self._at("critique", critique.round)
                added["critiques"].append(critique)
            case ProposalRevised(proposal=proposal):
                self._at("revise", self._round)
                added["proposals"].append(proposal)
            case CheckCompleted(proposal_id=proposal_id, result=result, started_at=started, finished_at=finished):
                self._at("check", 0)
                added["checks"].append(RecordedCheck(proposal_id, result, started, finished))
            case AgentCallFinished(call=call):
                added["calls"].append(call)
            case AgentFailed(failure=failure):
                self._at(failure.phase.value, failure.round)
                added["failures"].append(failure)
            case RankingReady(outcome=outcome):
                self._at("check", 0)
                self._outcome = outcome
        self._changed()
        self._forward(event)

    @property
    def record(self) -> DeliberationRecord:
        """The record as the events so far made it: built when read, not on every event (a
        rebuild copies every tuple of the record, which per event is quadratic over a run)."""
        if self._built_version != self._version:
            self.record = replace(self._base, **self._changes())
        return self._base

    @record.setter
    def record(self, record: DeliberationRecord) -> None:
        self._base = record
        self._added = _no_additions()
        self._outcome = None
        self._built_version = self._version

    @property
    def outcome(self) -> DeliberationOutcome | None:
        """The record's outcome (from the ranking event), without building the record."""
        return self._base.outcome if self._outcome is None else self._outcome

    async def flush(self) -> None:
        """Return once the record as it is now is stored: wait for the write in flight, then
        write the latest state unless that write covered it. Raises :class:`RecordLost` once
        the store refused a write. A write that fails (the database is unreachable for a
        while) is logged and the run goes on: every write stores the whole record, so the
        next one that succeeds stores this state too (a crash before then makes the calls
        since the last stored write again). A flush that is cancelled lets its write finish."""
        target = self._version
        if self._written < target and not self.lost.is_set():
            await asyncio.shield(self._write_progress())
        if self.lost.is_set():
            raise RecordLost(
                f"the store refused to write deliberation {self.record.deliberation_id}: it is final or "
                "another worker took it over"
            )

    def mark_phase(self, phase: str, round_number: int = 0) -> None:
        """A phase the engine's events do not show (the selection) ended now."""
        self._at(phase, round_number)
        self._changed()

    async def finish(
        self,
        status: RecordStatus,
        *,
        usage: TokenUsage | None = None,
        selection: Selection | None = None,
        error: str = "",
        error_kind: str = "",
        error_cause: str = "",
    ) -> DeliberationRecord:
        """Stop following, then write the finished record; returns once it is stored.

        The outcome is already in the record, from the ranking event (a run that failed
        before its ranking has none)."""
        await self._stop()
        self._close_phase()
        changes = self._changes() if self._built_version != self._version else {}
        changes["phases"] = tuple(self._phases)
        if usage is not None:
            changes["usage"] = usage
        final = self._base.finished(  # with what the events added since the record was built: one copy
            status,
            time.time(),
            selection=selection,
            error=error,
            error_kind=error_kind,
            error_cause=error_cause,
            **changes,
        )
        self.record = final
        async with self._lock:  # after the write in flight, if any
            stored = await self._store.update(final)
        self._accepted(final, stored)
        return final

    # -- internals ----------------------------------------------------------------

    def _at(self, phase: str, round_number: int) -> None:
        now = time.time()
        key = (phase, round_number)
        if self._phase != key:
            if self._phase is not None:
                self._close_phase()
                self._phase_started = self._phase_last
            elif self._resumed and (self._resumed[-1].phase, self._resumed[-1].round) == key:
                going_on = self._phases.pop()  # the phase the earlier run was in goes on
                self._phase_started = going_on.started_at
            self._resumed = []
            self._phase = key
        self._phase_last = max(now, self._phase_started)

    def _close_phase(self) -> None:
        if self._phase is not None:
            phase, round_number = self._phase
            self._phases.append(PhaseTiming(phase, round_number, self._phase_started, self._phase_last))
            self._phase = None

    def _changes(self) -> dict[str, Any]:
        """The fields the events changed since the record was last built, as ``replace`` takes them."""
        record = self._base
        changes: dict[str, Any] = {
            name: (*getattr(record, name), *items) for name, items in self._added.items() if items
        }
        if self._outcome is not None:
            changes.update(outcome=self._outcome, usage=self._outcome.usage)
        changes.update(phases=self._current_phases(), updated_at=self._updated_at)
        return changes

    def _current_phases(self) -> tuple[PhaseTiming, ...]:
        if self._phase is None:
            return tuple(self._phases)
        phase, round_number = self._phase
        return (*self._phases, PhaseTiming(phase, round_number, self._phase_started, self._phase_last))

    def _changed(self) -> None:
        self._updated_at = time.time()
        self._version += 1
        self._dirty.set()
        if self._due_on_change:
            self._due_on_change = False
            self._task = asyncio.get_running_loop().create_task(self._spaced_write())

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            if self._closing:
                return
            await self._write_progress()

    def _due(self) -> None:
        """Spaced: the interval has passed; write what changed, or the next change at once."""
        self._timer = None
        if self._closing or self.lost.is_set():
            return
        if self._written < self._version:
            self._task = asyncio.get_running_loop().create_task(self._spaced_write())
        else:
            self._due_on_change = True

    async def _spaced_write(self) -> None:
        await self._write_progress()
        if not self._closing:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._due)

    async def _write_progress(self) -> None:
        try:
            await self._write()
        except Exception as exc:  # progress is best effort; the final write is not
            log.warning("could not write the progress of deliberation %s: %s", self.record.deliberation_id, exc)

    async def _write(self) -> None:
        """Write the latest state unless it is stored already; one write at a time."""
        async with self._lock:
            self._dirty.clear()
            if self._written >= self._version or self._closing or self.lost.is_set():
                return
            version, record = self._version, self.record
            stored = await self._store.update(record)
            if self._accepted(record, stored):
                self._written = version
                self.writes += 1

    def _accepted(self, record: DeliberationRecord, stored: object) -> bool:
        """Whether the store took ``record`` (its ``update`` returns False when it refused);
        tells ``on_write`` when it did, sets :attr:`lost` when not."""
        if stored is False:
            if not self.lost.is_set():
                log.warning(
                    "the store refused to write deliberation %s: it is final or another worker took it over",
                    record.deliberation_id,
                )
            self.lost.set()
            return False
        if self._on_write is not None:
            try:
                self._on_write(record)
            except Exception:
                log.exception("on_write failed for deliberation %s", record.deliberation_id)
        return True

    async def _stop(self) -> None:
        self._closing = True
        self._dirty.set()
        self._due_on_change = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            await asyncio.shield(self._task)


def _no_additions() -> dict[str, list[Any]]:
    """What the events added to the record's tuples since it was last built, by field."""
    return {"proposals": [], "critiques": [], "checks": [], "calls": [], "failures": []}
