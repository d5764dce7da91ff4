"""Deliberate, Orchestrate and StreamDeliberation through the work queue (``ORCH_NATS_URL``).

With a queue configured, these calls submit the deliberation, watch its record until it is
final, and answer as they do when they run it themselves: the ranking, the winner, or the
error the run failed with. A caller that goes away (its deadline passed, or it cancelled)
cancels the deliberation, as it does when the call runs it.

A failed record's ``error_kind`` names the core error it failed with; the call raises that
error again so that :mod:`orchestrator_grpc.status` maps it to the same status code as a
call that ran it in-process. What a record cannot say is lost: a QuorumLost's shared cause
(its code is then UNAVAILABLE, where the in-process call gives the cause's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from orchestrator_core import errors
from orchestrator_core.events import DeliberationEvent, DeliberationFinished
from orchestrator_core.orchestrator import DeliberationRequest, Orchestrator
from orchestrator_core.records import DeliberationRecord, RecordStatus

log = logging.getLogger(__name__)


class DeliberationCancelled(errors.OrchestratorError):
    """The deliberation was cancelled (CancelDeliberation, or its caller went away)."""


class WorkerLost(errors.OrchestratorError):
    """No worker could finish the deliberation: each one that took it stopped or vanished
    (``error_kind`` WorkerLost or Interrupted); a retry with the same request_id runs it again."""


_BY_KIND: dict[str, type[errors.OrchestratorError]] = {
    kind.__name__: kind
    for kind in (
        errors.InvalidRequest,
        errors.NotFound,
        errors.NoCouncil,
        errors.AtCapacity,
        errors.AgentError,
        errors.BackendUnavailable,
        errors.BackendRejected,
        errors.QuorumLost,
        errors.DeadlineExceeded,
        errors.RecordsUnavailable,
    )
}
_BY_KIND["Cancelled"] = DeliberationCancelled
_BY_KIND["WorkerLost"] = WorkerLost
_BY_KIND["Interrupted"] = WorkerLost


class RunFailed(Exception):
    """A record failed with an error of a kind the core does not raise on purpose (a bug in a
    plugin or in the service): the transport answers INTERNAL and logs it."""


def failure_of(record: DeliberationRecord) -> Exception:
    """The error a call that ran ``record`` itself would have raised."""
    message = record.error or record.status.value
    if record.error_kind == errors.NoViableProposal.__name__:
        return errors.NoViableProposal(message, outcome=record.outcome)
    if record.status is RecordStatus.CANCELLED:
        return DeliberationCancelled(message)
    if record.error_kind == errors.QuorumLost.__name__:
        return _quorum_lost(message, record.error_cause)
    kind = _BY_KIND.get(record.error_kind)
    if kind is None:
        return RunFailed(f"deliberation {record.deliberation_id} failed: {record.error_kind}: {message}")
    return kind(message)


def _quorum_lost(message: str, cause: str) -> errors.QuorumLost:
    """The QuorumLost the run raised, with the kind of cause the record kept (so it maps to the
    same status code: a plugin's bug INTERNAL, a rejected request FAILED_PRECONDITION, ...)."""
    if cause == "PluginBug":
        return errors.QuorumLost(message, plugin_bug=True)
    common = {kind.__name__: kind for kind in (errors.BackendUnavailable, errors.BackendRejected)}.get(cause)
    return errors.QuorumLost(message, cause=common(message) if common is not None else None)


async def submitted_events(
    orchestrator: Orchestrator, request: DeliberationRequest, *, top_k: int | None, timeout: float | None
) -> AsyncGenerator[tuple[str, int, DeliberationEvent], None]:
    """Submit ``request``, then each event of its record as it is recorded, as (deliberation
    id, sequence, event); ends when the record succeeded, raises :func:`failure_of` it when it
    did not. Closing the iterator before the end cancels the deliberation."""
    submitted = await orchestrator.submit(request, top_k=top_k, timeout=timeout)
    deliberation_id = submitted.deliberation_id
    events = _followed(orchestrator, deliberation_id)
    async with contextlib.aclosing(events):
        async for sequence, event in events:
            yield deliberation_id, sequence, event


async def final_record(
    orchestrator: Orchestrator, request: DeliberationRequest, *, top_k: int | None, timeout: float | None
) -> DeliberationRecord:
    """Submit ``request`` and return its record once it succeeded (see :func:`submitted_events`)."""
    submitted = await orchestrator.submit(request, top_k=top_k, timeout=timeout)
    events = _followed(orchestrator, submitted.deliberation_id)
    async with contextlib.aclosing(events):
        async for _ in events:
            pass
    return await orchestrator.get_record(submitted.deliberation_id)


async def _followed(
    orchestrator: Orchestrator, deliberation_id: str
) -> AsyncGenerator[tuple[int, DeliberationEvent], None]:
    """The record's events until it is final, its finished event left out; raises the
    record's error unless it succeeded. Left before the end, it cancels the deliberation."""
    ended = False
    try:
        watched = orchestrator.watch(deliberation_id)
        async with contextlib.aclosing(watched):  # type: ignore[type-var]
            async for sequence, event in watched:
                if isinstance(event, DeliberationFinished):
                    ended = True
                    if event.status != RecordStatus.SUCCEEDED:
                        raise failure_of(await orchestrator.get_record(deliberation_id))
                    return
                yield sequence, event
    finally:
        if not ended:
            await asyncio.shield(_cancel(orchestrator, deliberation_id))


async def _cancel(orchestrator: Orchestrator, deliberation_id: str) -> None:
    """Cancel a deliberation whose caller went away; one that just finished stays as it is."""
    try:
        await orchestrator.cancel(deliberation_id)
    except errors.OrchestratorError as exc:
        log.debug("deliberation %s not cancelled: %s", deliberation_id, exc)
