"""Printing for the CLI: protobuf messages as JSON, RPC errors as one line."""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

RPC_FAILURE = 1


def to_dict(message: Message) -> dict[str, Any]:
    """Every field, unset ones too, under its proto name (as in the .proto file)."""
    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def fail_rpc(error: grpc.aio.AioRpcError, address: str) -> int:
    print(f"orchestrator: {address}: {error.code().name}: {error.details()}", file=sys.stderr)
    return RPC_FAILURE
