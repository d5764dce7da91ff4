"""What the tests of the ``orchestrator`` command share: an environment with the test plugin
installed, a ``serve`` process started on a free port, a client command run, and the gate
the ``gate`` agents wait on."""

from __future__ import annotations

import selectors
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from grpc_test_support import HANG_GUARD, orchestrator_command
from plugin_install import installed_plugins

PLUGIN_NAME = "scripted-cli"
READY_LINE = "orchestrator serving on "


def cli_environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Process environment with the test plugin installed (a dist-info on PYTHONPATH)."""
    site = tmp_path_factory.mktemp("site")
    env = installed_plugins(site, "grpc-cli-test-plugin", {PLUGIN_NAME: "grpc_cli_test_plugin"})
    env.update(
        ORCH_PLUGINS_ENABLED=PLUGIN_NAME,
        ORCH_COUNCILS__DEV__BACKEND="scripted",
        ORCH_COUNCILS__DEV__AGENTS="2",
        ORCH_COUNCILS__HOSTILE__BACKEND="hostile",
        ORCH_COUNCILS__HOSTILE__AGENTS="2",
        ORCH_DATABASE_PATH=str(tmp_path_factory.mktemp("db") / "records.sqlite3"),
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
        ORCH_GRACE_PERIOD_SECONDS="5",
    )
    return env


@dataclass
class Served:
    process: subprocess.Popen[str]
    address: str


def serve_process(
    env: dict[str, str], log: Path, *args: str, wait: float = HANG_GUARD, what: str = ""
) -> tuple[subprocess.Popen[str], str]:
    """``orchestrator serve ARGS`` with ``env``, once it says it is serving (it must start within
    ``wait``): the process and its address; its log goes to ``log``."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [orchestrator_command(), "serve", *args], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=wait)
    line = process.stdout.readline() if ready else ""
    if not line.startswith(READY_LINE):
        process.kill()
        process.wait()
        shown = " ".join(("orchestrator serve", *args, *((f"with {what}",) if what else ())))
        pytest.fail(f"{shown} did not start ({line!r}); its log:\n{log.read_text()}")
    return process, line.removeprefix(READY_LINE).strip()


def start_server(env: dict[str, str], log: Path) -> Served:
    return Served(*serve_process(env, log))


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [orchestrator_command(), *args], env=env, capture_output=True, text=True, timeout=HANG_GUARD * 3, check=False
    )


class Gate:
    """The test's side of the ``gate`` agents: each connects to this socket when it is
    called, and answers once its connection is closed."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(HANG_GUARD * 3)  # guards a hang only
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._held: list[socket.socket] = []

    def wait_for_agents(self, count: int) -> None:
        """Until ``count`` agents have been called."""
        try:
            while len(self._held) < count:
                self._held.append(self._listener.accept()[0])
        except TimeoutError:
            pytest.fail(f"timed out waiting for {count} agents to be called")

    def open(self) -> None:
        """Let the agents called so far answer."""
        for connection in self._held:
            connection.close()
        self._held.clear()

    def close(self) -> None:
        self.open()
        self._listener.close()
