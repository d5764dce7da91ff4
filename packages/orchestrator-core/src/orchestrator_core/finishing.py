"""Ending a run: counting it and writing its finished record (a direct run's and a queued
one's alike), or answering from the record of an earlier run of the same request."""

from __future__ import annotations

import asyncio
import logging
import time

from orchestrator_core.breaker import GuardedAgent
from orchestrator_core.deliberation import UsageMeter
from orchestrator_core.events import EventSink, RankingReady
from orchestrator_core.models import DeliberationOutcome, Selection, TokenUsage
from orchestrator_core.records.model import DeliberationRecord, RecordStatus
from orchestrator_core.records.writer import RecordWriter
from orchestrator_core.statistics import StatisticsRecorder
from orchestrator_core.telemetry import DeliberationScope

log = logging.getLogger(__name__)


async def finish(
    statistics: StatisticsRecorder,
    writer: RecordWriter,
    scope: DeliberationScope,
    status: RecordStatus,
    started: float,
    usage: TokenUsage,
    *,
    selection: Selection | None = None,
    error: str = "",
    error_kind: str = "",
    error_cause: str = "",
) -> None:
    """Count the run and the tokens it spent, then write its finished record (durable
    when this returns). The record has the outcome already, from the ranking event."""
    scope.status, scope.error_kind, scope.usage = status.value, error_kind, usage
    outcome = writer.outcome  # the record itself is built once, finished, by writer.finish
    if outcome is not None:
        scope.rounds_run, scope.viable_proposals = outcome.rounds, outcome.viable_proposals
    statistics.record(
        role=scope.role,
        orchestration=scope.kind == "orchestrate",
        seconds=time.monotonic() - started,
        failed=status is not RecordStatus.SUCCEEDED,
        usage=usage,
    )
    await writer.finish(
        status, usage=usage, selection=selection, error=error, error_kind=error_kind, error_cause=error_cause
    )


async def finish_failed(
    statistics: StatisticsRecorder,
    writer: RecordWriter,
    scope: DeliberationScope,
    status: RecordStatus,
    started: float,
    meter: UsageMeter,
    error: str,
    error_kind: str,
    error_cause: str = "",
) -> None:
    """Like :func:`finish`, for a run that failed: a failure to write the record is
    logged, and the run's own error is what the caller gets.

    The write is shielded: the caller's cancellation (a client's deadline passing just as
    the run's own timeout fired) must not leave the record running for ever."""

    async def write() -> None:
        try:
            await finish(
                statistics,
                writer,
                scope,
                status,
                started,
                meter.total,
                error=error,
                error_kind=error_kind,
                error_cause=error_cause,
            )
        except Exception as exc:
            log.error("could not record deliberation %s as %s: %s", writer.record.deliberation_id, status, exc)

    await asyncio.shield(write())


def named_backend(agents: list[GuardedAgent], backend: str) -> list[GuardedAgent]:
    """The council's agents, each naming its backend (for errors and failure counts)."""
    for agent in agents:
        if not agent.backend:
            agent.backend = backend
    return agents


def replayed(record: DeliberationRecord, on_event: EventSink) -> tuple[DeliberationOutcome, Selection | None]:
    """The answer a succeeded record holds (a request_id's earlier run), its ranking event sent."""
    if record.outcome is None:  # pragma: no cover - a succeeded record has its outcome
        raise RuntimeError(f"record {record.deliberation_id} succeeded without an outcome")
    on_event(RankingReady(record.outcome))
    return record.outcome, record.selection
