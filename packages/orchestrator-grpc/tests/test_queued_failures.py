"""A call answered from a queued run's record fails with the status code the run itself would
have answered: the record keeps why a quorum was lost."""

from __future__ import annotations

import time

import grpc
import pytest

from orchestrator_core import errors
from orchestrator_core.models import Task
from orchestrator_core.records import DeliberationRecord, RecordStatus
from orchestrator_grpc.queued import failure_of
from orchestrator_grpc.status import status_for

RAISED = [
    errors.QuorumLost("2 of 3 agents failed", cause=errors.BackendUnavailable("endpoint down")),
    errors.QuorumLost("2 of 3 agents failed", cause=errors.BackendRejected("model not found")),
    errors.QuorumLost("2 of 3 agents failed", plugin_bug=True),
    errors.QuorumLost("2 of 3 agents failed: mixed causes"),
]


def failed_with(error: errors.OrchestratorError) -> DeliberationRecord:
    now = time.time()
    return DeliberationRecord(
        deliberation_id="d" * 32, kind="deliberate", role="DEV", task=Task("DEV", "add"), status=RecordStatus.FAILED,
        created_at=now, finished_at=now, error=str(error), error_kind=type(error).__name__,
        error_cause=errors.cause_kind(error),
    )


@pytest.mark.parametrize("raised", RAISED, ids=lambda e: errors.cause_kind(e) or "none")
def test_a_quorum_lost_read_back_maps_to_the_code_the_run_answered(raised: errors.QuorumLost) -> None:
    answered = status_for(raised)
    assert answered is not None
    assert status_for(failure_of(failed_with(raised))) == answered


def test_the_causes_answer_different_codes() -> None:
    codes = [status_for(failure_of(failed_with(raised))) for raised in RAISED]
    assert [code for code, _ in codes if code is not None] == [
        grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
    ]
