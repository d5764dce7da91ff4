"""Printing for the CLI: protobuf messages as JSON, RPC errors as one line."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from orchestrator_core.text import inert

if TYPE_CHECKING:
    import grpc
    from google.protobuf.message import Message

    from orchestrator_grpc.cli.connection import Connection

RPC_FAILURE = 1


def to_dict(message: Message) -> dict[str, Any]:
    """Every field, unset ones too, under its proto name (as in the .proto file)."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def print_json(data: Any) -> None:
    """JSON on stdout, values exact: JSON's own escaping keeps control characters inert."""
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def fail_rpc(error: grpc.aio.AioRpcError, connection: Connection) -> int:
    """One line on stderr: the address, the status code and what the server said."""
    import grpc

    code = error.code()
    details = inert(error.details() or "")
    if code is grpc.StatusCode.UNAUTHENTICATED:
        details = _unauthenticated(connection)
    print(f"orchestrator: {connection.address}: {code.name}: {details}", file=sys.stderr)
    return RPC_FAILURE


def _unauthenticated(connection: Connection) -> str:
    # The server's own message names gRPC metadata, which says nothing to a CLI user.
    from orchestrator_grpc.cli.connection import TOKEN_ENV, TOKEN_FILE_OPTION

    if connection.token is None:
        return (
            f"the server requires a bearer token: give {TOKEN_FILE_OPTION} FILE "
            f"(its first line is the token) or set {TOKEN_ENV}"
        )
    return f"the server refused the bearer token (from {TOKEN_FILE_OPTION} or {TOKEN_ENV})"
