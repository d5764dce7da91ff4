"""What a deliberation record holds, and how records are asked for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from orchestrator_core.models import (
    AgentCall,
    AgentFailure,
    CheckResult,
    Critique,
    DeliberationOutcome,
    Proposal,
    Selection,
    Task,
    TokenUsage,
)


class RecordStatus(StrEnum):
    QUEUED = "queued"
    """Submitted and waiting for a worker (see :mod:`orchestrator_core.queued`)."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self not in (RecordStatus.QUEUED, RecordStatus.RUNNING)


RETRYABLE_STATUSES = (RecordStatus.FAILED, RecordStatus.CANCELLED, RecordStatus.INTERRUPTED)
"""A record in one of these gives its request_id up to a retry of the same request."""


@dataclass(frozen=True)
class CouncilSeat:
    """One agent of the council that ran: its id, backend and options (secrets redacted;
    each value as JSON text), and what it ran as its backend reported it: the model, the
    endpoint (credentials redacted) and ``source``, "options" when the council's options
    named the model or the endpoint, "settings" when both came from the backend's
    ``ORCH_*`` settings or defaults. Empty when the backend does not say."""

    agent_id: str
    backend: str
    options: Mapping[str, str] = field(default_factory=dict)
    model: str = ""
    endpoint: str = ""
    source: str = ""


@dataclass(frozen=True)
class RecordedCheck:
    """One check result, with the proposal version it judged and when it ran (seconds since
    the Unix epoch; 0 in records written before these were kept)."""

    proposal_id: str
    result: CheckResult
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass(frozen=True)
class PhaseTiming:
    """When one phase ran (wall-clock seconds since the Unix epoch).

    ``phase`` is generate, critique, revise, check or select; ``round`` numbers the
    critique/revise rounds from 1 (0 for the others).
    """

    phase: str
    round: int
    started_at: float
    finished_at: float


@dataclass(frozen=True)
class DeliberationRecord:
    """The audit trail of one deliberation or orchestration, written as it goes.

    ``proposals`` holds every version (generated and each revision) in the order they
    appeared; ``outcome`` and ``selection`` hold the ranking, scores, winner and rationale
    once they exist. ``request_fingerprint`` identifies the request a ``request_id`` was
    used for, so a retry with a different request is told apart.
    """

    deliberation_id: str
    kind: str
    role: str
    task: Task
    status: RecordStatus
    created_at: float
    finished_at: float | None = None
    outcome: DeliberationOutcome | None = None
    selection: Selection | None = None
    error: str = ""
    request_id: str = ""
    request_fingerprint: str = ""
    error_kind: str = ""
    owner: str = ""
    updated_at: float = 0.0
    num_agents: int = 0
    rounds: int = 0
    top_k: int = 0
    council: tuple[CouncilSeat, ...] = ()
    proposals: tuple[Proposal, ...] = ()
    critiques: tuple[Critique, ...] = ()
    checks: tuple[RecordedCheck, ...] = ()
    failures: tuple[AgentFailure, ...] = ()
    phases: tuple[PhaseTiming, ...] = ()
    usage: TokenUsage = field(default_factory=TokenUsage)
    calls: tuple[AgentCall, ...] = ()
    """Every agent call, the selection's included, in the order they ended."""
    queued: bool = False
    """Submitted through the work queue (a worker runs it), not run by the call that made it."""
    deadline_at: float = 0.0
    """When the run's budget ends, in seconds since the Unix epoch (0: none recorded); a
    queued record's budget counts from its submission, the wait in the queue included."""
    cancel_requested: bool = False
    """A cancel was asked while it ran; the process running it stops it (CANCELLED)."""
    error_cause: str = ""
    """Once it failed because its quorum was lost: why (see :func:`orchestrator_core.errors.cause_kind`)."""
    handed_back: bool = False
    """Its worker stopped (a shutdown) and handed it back unfinished, its progress stored; the
    next worker resumes it. Not set when a worker was lost (killed, or its ownership lapsed)."""

    def finished(
        self,
        status: RecordStatus,
        at: float,
        *,
        usage: TokenUsage | None = None,
        phases: tuple[PhaseTiming, ...] | None = None,
        selection: Selection | None = None,
        error: str = "",
        error_kind: str = "",
        error_cause: str = "",
        **changes: Any,
    ) -> DeliberationRecord:
        """This record, finished at ``at`` with ``status``; what is not given stays as it was.

        The outcome is not among the changes: it comes with the ranking event, while the
        deliberation runs (see :class:`~orchestrator_core.records.writer.RecordWriter`).
        ``changes`` are other fields to change in the same copy (a writer's events not yet
        built into the record): one copy of the record instead of two. A ``usage`` or
        ``phases`` among them stands for the argument of that name, given or not.
        """
        changed_usage, changed_phases = changes.pop("usage", self.usage), changes.pop("phases", self.phases)
        changes.pop("updated_at", None)
        return replace(
            self,
            **changes,
            status=status,
            finished_at=at,
            updated_at=at,
            usage=changed_usage if usage is None else usage,
            phases=changed_phases if phases is None else phases,
            selection=self.selection if selection is None else selection,
            error=error or self.error,
            error_kind=error_kind or self.error_kind,
            error_cause=error_cause or self.error_cause,
        )


@dataclass(frozen=True)
class RecordQuery:
    """A ListDeliberations filter. Times are seconds since the Unix epoch: ``created_after``
    is inclusive, ``created_before`` exclusive; None leaves that end open."""

    role: str = ""
    status: RecordStatus | None = None
    created_after: float | None = None
    created_before: float | None = None
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class RecordPage:
    records: tuple[DeliberationRecord, ...]
    next_page_token: str
