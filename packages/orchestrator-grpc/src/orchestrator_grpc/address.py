"""Where a client dials by default (no gRPC here: the command line reads it before importing gRPC)."""

from __future__ import annotations

import os

ADDRESS_ENV = "ORCH_ADDRESS"
DEFAULT_ADDRESS = "127.0.0.1:50055"


def default_address() -> str:
    return os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS
