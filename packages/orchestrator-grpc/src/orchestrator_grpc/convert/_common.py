"""Shared by the conversion modules: record statuses and the standard check kinds."""

from __future__ import annotations

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.models import CheckKind
from orchestrator_core.records import RecordStatus

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"

STATUS_TO_PROTO: dict[RecordStatus, pb.DeliberationStatus] = {
    RecordStatus.QUEUED: pb.DELIBERATION_STATUS_QUEUED,
    RecordStatus.RUNNING: pb.DELIBERATION_STATUS_RUNNING,
    RecordStatus.SUCCEEDED: pb.DELIBERATION_STATUS_SUCCEEDED,
    RecordStatus.FAILED: pb.DELIBERATION_STATUS_FAILED,
    RecordStatus.CANCELLED: pb.DELIBERATION_STATUS_CANCELLED,
    RecordStatus.INTERRUPTED: pb.DELIBERATION_STATUS_INTERRUPTED,
}
STATUS_FROM_PROTO = {value: status for status, value in STATUS_TO_PROTO.items()}
STANDARD_KINDS = (CheckKind.POLICY.value, CheckKind.LINT.value, CheckKind.DRYRUN.value)
STANDARD_CHECK_NAMES = STANDARD_KINDS
"""The built-in checks' names, which are also their kinds: the fields of a CheckSuite, which hold
the checks so *named* (a third-party check of kind lint goes in ``others``)."""
