"""Protobuf <-> core models: the one module that knows both.

Unset or zero protobuf fields become the core's defaults (0 means "the server's default"
throughout the API). Domain errors for bad input are raised as
:class:`~orchestrator_core.errors.InvalidRequest`, so they map to INVALID_ARGUMENT.

The names below are the package's public API, what the servicer, the client, the CLI and
the evaluation use; the submodules' other functions are their building blocks.
"""

from orchestrator_grpc.convert._common import NOT_SERVING, SERVING, STATUS_TO_PROTO
from orchestrator_grpc.convert.client_records import record_from_proto
from orchestrator_grpc.convert.client_results import (
    event_from_proto,
    orchestration_from_proto,
    outcome_from_proto,
    usage_from_proto,
)
from orchestrator_grpc.convert.records import page_to_proto, record_to_proto
from orchestrator_grpc.convert.requests import (
    after_sequence_from_proto,
    deliberate_request_to_proto,
    deliberation_request_from_proto,
    record_status_from_proto,
    submission_from_proto,
    submit_request_to_proto,
    time_bound_from_proto,
)
from orchestrator_grpc.convert.results import (
    check_suite_to_proto,
    event_to_proto,
    orchestration_to_proto,
    outcome_to_proto,
)
from orchestrator_grpc.convert.status import status_to_proto

__all__ = [
    "NOT_SERVING",
    "SERVING",
    "STATUS_TO_PROTO",
    "after_sequence_from_proto",
    "check_suite_to_proto",
    "deliberate_request_to_proto",
    "deliberation_request_from_proto",
    "event_from_proto",
    "event_to_proto",
    "orchestration_from_proto",
    "orchestration_to_proto",
    "outcome_from_proto",
    "outcome_to_proto",
    "page_to_proto",
    "record_from_proto",
    "record_status_from_proto",
    "record_to_proto",
    "status_to_proto",
    "submission_from_proto",
    "submit_request_to_proto",
    "time_bound_from_proto",
    "usage_from_proto",
]
