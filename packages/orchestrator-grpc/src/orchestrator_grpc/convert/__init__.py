"""Protobuf <-> core models: the one module that knows both.

Unset or zero protobuf fields become the core's defaults (0 means "the server's default"
throughout the API). Domain errors for bad input are raised as
:class:`~orchestrator_core.errors.InvalidRequest`, so they map to INVALID_ARGUMENT.
"""

from orchestrator_grpc.convert._common import NOT_SERVING, SERVING
from orchestrator_grpc.convert.client_results import *  # noqa: F403
from orchestrator_grpc.convert.records import *  # noqa: F403
from orchestrator_grpc.convert.requests import *  # noqa: F403
from orchestrator_grpc.convert.results import *  # noqa: F403
from orchestrator_grpc.convert.status import *  # noqa: F403

__all__ = ["NOT_SERVING", "SERVING"]
