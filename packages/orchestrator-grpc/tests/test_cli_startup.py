"""The ``orchestrator`` command imports only what the command run needs: ``--help`` and
usage errors nothing heavy, a client command no server, settings or plugin machinery."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from orchestrator_grpc.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""


def imported_by(*argv: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120, check=False
    )
    return set(result.stdout.splitlines()[-1].split())


def test_help_imports_no_grpc_protobuf_rich_pydantic_or_core() -> None:
    modules = imported_by("--help")
    heavy = {m for m in modules if m.split(".")[0] in {"grpc", "google", "rich", "pydantic", "orchestrator_core"}}
    assert heavy == set()
    assert "orchestrator.v1.orchestrator_pb2" not in modules


def test_a_client_command_imports_no_settings_plugins_or_server() -> None:
    modules = imported_by("health", "--address", "127.0.0.1:1", "--timeout", "2")
    assert "grpc" in modules  # it did dial
    unneeded = {"orchestrator_core.settings", "orchestrator_core.plugins", "orchestrator_grpc.server",
                "orchestrator_grpc.cli.commands", "rich.console", "pydantic"}
    assert modules & unneeded == set()
