"""``orchestrator serve`` refuses a wrong configuration with one line naming what is wrong and
exit code 2: a missing or invalid ``ORCH_CONFIG_FILE``, a bad setting, an address in use.
``orchestrator plugins`` reads the same settings and refuses them alike."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_test_support import HANG_GUARD, orchestrator_command

CONFIGURATION_ERROR = 2


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ORCH_")}
    env.update(
        ORCH_PLUGINS_ENABLED="none-installed",
        ORCH_DATABASE_PATH=str(tmp_path / "records.sqlite3"),
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
    )
    return env


def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``orchestrator serve``, which must exit by itself: a wrong configuration never serves."""
    return orchestrator(env, "serve", *args)


def orchestrator(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [orchestrator_command(), *args], env=env, capture_output=True, text=True, timeout=HANG_GUARD * 3,
        check=False,
    )


def _refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line ``serve`` printed about the configuration (log lines may precede it)."""
    assert result.returncode == CONFIGURATION_ERROR, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("orchestrator: ")
    return last


def test_a_missing_config_file_is_named(environment: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent.toml"
    environment["ORCH_CONFIG_FILE"] = str(missing)
    line = _refused(serve(environment))
    assert line == f"orchestrator: ORCH_CONFIG_FILE {missing} cannot be read: No such file or directory"


def test_an_unreadable_config_file_is_named(environment: dict[str, str], tmp_path: Path) -> None:
    environment["ORCH_CONFIG_FILE"] = str(tmp_path)  # a directory
    line = _refused(serve(environment))
    assert line.startswith(f"orchestrator: ORCH_CONFIG_FILE {tmp_path} cannot be read: ")


def test_invalid_toml_names_the_file_and_the_line(environment: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "orchestrator.toml"
    config.write_text('default_rounds = 2\n\n[councils.DEV\nbackend = "command"\n')
    environment["ORCH_CONFIG_FILE"] = str(config)
    result = serve(environment)
    line = _refused(result)
    assert line.startswith(f"orchestrator: ORCH_CONFIG_FILE {config} is not valid TOML: ")
    assert "line 3" in line
    assert len(result.stderr.strip().splitlines()) == 1  # refused before logging starts


def test_a_bad_setting_value_is_a_configuration_error(environment: dict[str, str]) -> None:
    environment["ORCH_COUNCILS__DEV__AGENTS"] = "0"
    line = _refused(serve(environment))
    assert line.startswith("orchestrator: invalid settings: councils.DEV.agents: ")


@pytest.fixture
def port_in_use() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_port_in_use_names_the_address(environment: dict[str, str], port_in_use: int) -> None:
    line = _refused(serve(environment, "--port", str(port_in_use)))
    assert line == (
        f"orchestrator: cannot listen on 127.0.0.1:{port_in_use}: address already in use "
        "(ORCH_HOST, ORCH_PORT, or serve --host/--port)"
    )


def test_an_unknown_log_level_is_a_configuration_error(environment: dict[str, str]) -> None:
    environment["ORCH_LOG_LEVEL"] = "verbose"
    line = _refused(serve(environment))
    assert line == (
        "orchestrator: invalid settings: log_level: Value error, must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )


@pytest.mark.parametrize("command", ["serve", "plugins"])
def test_serve_and_plugins_refuse_the_same_settings_alike(
    environment: dict[str, str], tmp_path: Path, command: str
) -> None:
    missing = tmp_path / "nonexistent.toml"
    unreadable = _refused(orchestrator({**environment, "ORCH_CONFIG_FILE": str(missing)}, command))
    assert unreadable == f"orchestrator: ORCH_CONFIG_FILE {missing} cannot be read: No such file or directory"

    invalid = _refused(orchestrator({**environment, "ORCH_LOG_LEVEL": "verbose"}, command))
    assert invalid == (
        "orchestrator: invalid settings: log_level: Value error, must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
