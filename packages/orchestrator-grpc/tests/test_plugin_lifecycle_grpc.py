"""The service and the plugin platform: the server runs the plugins' startup hooks before
serving and their shutdown hooks when it stops; GetStatus lists a plugin that failed to
start, and a council whose backend's create() raises anything as not ready with the error.
The command line: ``orchestrator plugins`` exits 1 when a plugin failed (printing the JSON
all the same), strict ``serve`` names every failed plugin, and an invalid plugin setting
refuses to start with exit 2 and one line naming plugin and field."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_test_support import HANG_GUARD, make_settings, orchestrator_command

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.hookspecs import Agent, RegisterAgentBackend, hookimpl
from orchestrator_core.models import AgentConfig
from orchestrator_core.plugins import PluginHost
from orchestrator_core.testing import ScriptedBackend
from orchestrator_grpc.server import running_server


class KeyErrorBackend:
    name = "keyerror"

    def create(self, config: AgentConfig) -> Agent:
        raise KeyError("model")


class Lifecycle:
    def __init__(self, events: list[str], fail: bool = False) -> None:
        self.events = events
        self.fail = fail

    @hookimpl
    def register_agents(self, register: RegisterAgentBackend) -> None:
        register(ScriptedBackend(name="lifecycle" if not self.fail else "unstarted"))

    @hookimpl
    async def orchestrator_startup(self) -> None:
        if self.fail:
            raise RuntimeError("no licence")
        self.events.append("started")

    @hookimpl
    def orchestrator_shutdown(self) -> None:
        self.events.append("stopped" if not self.fail else "unstarted stopped")


class Registers:
    @hookimpl
    def register_agents(self, register: RegisterAgentBackend) -> None:
        register(KeyErrorBackend())
        register(ScriptedBackend())


async def test_the_server_runs_the_lifecycle_hooks_and_reports_what_failed(tmp_path: Path) -> None:
    events: list[str] = []
    host = PluginHost()
    host.register(Lifecycle(events), name="lifecycle")
    host.register(Lifecycle(events, fail=True), name="unlicensed")
    host.register(Registers(), name="registers")
    host.collect()
    settings = make_settings(
        tmp_path,
        councils={
            "DEV": {"backend": "scripted", "agents": 2},
            "BROKEN": {"backend": "keyerror", "agents": 2},
            "UNSTARTED": {"backend": "unstarted", "agents": 2},
        },
    )
    async with running_server(settings, host) as server:
        assert events == ["started"]
        async with grpc.aio.insecure_channel(server.address) as channel:
            status = await pb_grpc.OrchestratorServiceStub(channel).GetStatus(  # type: ignore[no-untyped-call]
                pb.GetStatusRequest(), timeout=HANG_GUARD
            )
    assert sorted(events) == ["started", "stopped", "unstarted stopped"]
    councils = {c.role: c for c in status.councils}
    assert councils["DEV"].ready
    assert not councils["BROKEN"].ready
    assert "backend 'keyerror' failed to create an agent: KeyError: 'model'" in councils["BROKEN"].detail
    assert not councils["UNSTARTED"].ready  # its plugin failed to start: the backend is withdrawn
    [failed] = status.failed_plugins
    assert (failed.name, failed.error) == ("unlicensed", "RuntimeError: no licence")


# -- the command line ---------------------------------------------------------------------

GOOD = """
from orchestrator_core.hookspecs import hookimpl
from orchestrator_core.testing import ScriptedBackend

@hookimpl
def register_agents(register):
    register(ScriptedBackend())
"""
FUTURE = GOOD.replace("@hookimpl", 'ORCHESTRATOR_PLUGIN_API = ">=2,<3"\n\n@hookimpl', 1)
RAISING = """
from orchestrator_core.hookspecs import hookimpl

@hookimpl
def register_checks(register):
    raise RuntimeError("cannot register")
"""


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """A process environment with three plugins installed: ``good``, ``future`` (plugin API
    2) and ``raising`` (its hook raises)."""
    site = tmp_path / "site"
    dist_info = site / "plugin_lifecycle_test_plugins-0.0.2.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-lifecycle-test-plugins\nVersion: 0.0.2\n")
    (dist_info / "entry_points.txt").write_text(
        "[orchestrator]\ngood = plt_good\nfuture = plt_future\nraising = plt_raising\n"
    )
    for module, source in (("plt_good", GOOD), ("plt_future", FUTURE), ("plt_raising", RAISING)):
        (site / f"{module}.py").write_text(source)
    env = {name: value for name, value in os.environ.items() if not name.startswith("ORCH_")}
    env.update(
        PYTHONPATH=str(site),
        ORCH_PLUGINS_ENABLED="good,future,raising",
        ORCH_COUNCILS__DEV__BACKEND="scripted",
        ORCH_DATABASE_PATH=str(tmp_path / "records.sqlite3"),
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
    )
    return env


def orchestrator(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [orchestrator_command(), *args], env=env, capture_output=True, text=True, timeout=HANG_GUARD * 3,
        check=False,
    )


def test_plugins_exits_1_when_a_plugin_failed_and_prints_the_json(environment: dict[str, str]) -> None:
    result = orchestrator(environment, "plugins")
    assert result.returncode == 1, result.stderr
    listed = json.loads(result.stdout)
    assert [p["name"] for p in listed["plugins"]] == ["good"]
    failed = {f["name"]: f for f in listed["failed_plugins"]}
    assert failed["future"]["error"] == (
        "IncompatiblePlugin: the plugin supports orchestrator plugin API >=2,<3, "
        "this orchestrator provides plugin API 1.0"
    )
    assert failed["raising"]["error"] == "RuntimeError: cannot register"
    assert failed["raising"]["version"] == "0.0.2"
    assert result.stderr.strip().splitlines()[-1] == "orchestrator: 2 plugin(s) failed: future, raising"
    assert "Traceback" in result.stderr  # each failure is logged with its traceback


def test_plugins_exits_0_when_every_plugin_loaded(environment: dict[str, str]) -> None:
    result = orchestrator({**environment, "ORCH_PLUGINS_ENABLED": "good"}, "plugins")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["failed_plugins"] == []


def test_strict_serve_names_every_failed_plugin(environment: dict[str, str]) -> None:
    result = orchestrator({**environment, "ORCH_PLUGINS_STRICT": "true"}, "serve")
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("orchestrator: 2 plugin(s) failed (ORCH_PLUGINS_STRICT): ")
    assert "future 0.0.2 failed to load: IncompatiblePlugin" in last
    assert "raising 0.0.2 failed to load: RuntimeError: cannot register" in last


@pytest.mark.parametrize("command", ["serve", "plugins"])
def test_an_invalid_plugin_setting_refuses_to_start_naming_plugin_and_field(
    environment: dict[str, str], tmp_path: Path, command: str
) -> None:
    env = {**environment, "ORCH_PLUGINS_ENABLED": "dryrun", "ORCH_PLUGINS__DRYRUN__TIMEOUT_SECONDS": "-5"}
    result = orchestrator(env, command)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "orchestrator: invalid settings of plugin dryrun ([plugins.dryrun]): timeout_seconds "
        "(ORCH_PLUGINS__DRYRUN__TIMEOUT_SECONDS): Input should be greater than 0"
    )

    config = tmp_path / "orchestrator.toml"
    config.write_text("[plugins.dryrun]\ncpu_seconds = 0\n")
    env = {**environment, "ORCH_PLUGINS_ENABLED": "dryrun", "ORCH_CONFIG_FILE": str(config)}
    result = orchestrator(env, command)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "orchestrator: invalid settings of plugin dryrun ([plugins.dryrun]): cpu_seconds "
        "(ORCH_PLUGINS__DRYRUN__CPU_SECONDS): Input should be greater than or equal to 1"
    )
