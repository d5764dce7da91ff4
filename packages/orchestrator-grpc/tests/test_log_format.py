"""The service's log lines: JSON objects or text, each with the ids bound where it was logged;
and ``orchestrator serve`` logging in the format ORCH_LOG_FORMAT names."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import selectors
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_test_support import HANG_GUARD, orchestrator_command, request
from plugin_install import installed_plugins

from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_grpc.observability.event_log import EVENTS_LOGGER
from orchestrator_grpc.observability.log_format import LogFormat, log_fields, log_handler

READY_LINE = "orchestrator serving on "


class Captured:
    """A logger of its own whose lines go through the service's handler to a buffer."""

    def __init__(self, log_format: LogFormat) -> None:
        self.buffer = io.StringIO()
        self.handler = log_handler(log_format, self.buffer)
        self.log = logging.getLogger(f"test.log_format.{log_format}")
        self.log.setLevel(logging.DEBUG)
        self.log.propagate = False
        self.log.addHandler(self.handler)

    def lines(self) -> list[str]:
        return self.buffer.getvalue().splitlines()

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def close(self) -> None:
        self.log.removeHandler(self.handler)


@pytest.fixture
def as_json() -> Iterator[Captured]:
    captured = Captured("json")
    yield captured
    captured.close()


@pytest.fixture
def as_text() -> Iterator[Captured]:
    captured = Captured("text")
    yield captured
    captured.close()


def test_a_json_line_has_time_level_logger_message_and_the_fields_logged_with_it(as_json: Captured) -> None:
    as_json.log.warning("agent %s timed out", "dev-2", extra={"event": "agent_call_finished", "round": 1})

    [line] = as_json.json()
    assert line == {
        "time": line["time"],
        "level": "WARNING",
        "logger": as_json.log.name,
        "message": "agent dev-2 timed out",
        "event": "agent_call_finished",
        "round": 1,
    }
    assert line["time"].endswith("Z")
    assert datetime.fromisoformat(line["time"]).utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_an_exception_is_one_line_with_its_traceback_as_text(as_json: Captured) -> None:
    try:
        raise RuntimeError("model crashed\non two lines")
    except RuntimeError:
        as_json.log.exception("plugin bug")

    [raw] = as_json.lines()
    line = json.loads(raw)
    assert line["message"] == "plugin bug"
    assert line["exc_info"].startswith("Traceback (most recent call last):\n")
    assert line["exc_info"].endswith("RuntimeError: model crashed\non two lines")


def test_ids_bound_to_a_context_are_on_each_line_until_it_ends(as_json: Captured) -> None:
    with log_fields(deliberation_id="d1", role="DEV"):
        as_json.log.info("in the deliberation")
        with log_fields(agent_id="dev-1", phase="generate"):
            as_json.log.info("in a call")
        with log_fields(phase="check", agent_id=""):  # an empty value binds nothing
            as_json.log.info("in the checks")
    as_json.log.info("after")

    inside, call, checks, after = as_json.json()
    assert (inside["deliberation_id"], inside["role"]) == ("d1", "DEV")
    assert "agent_id" not in inside
    assert (call["deliberation_id"], call["agent_id"], call["phase"]) == ("d1", "dev-1", "generate")
    assert (checks["phase"], "agent_id" in checks) == ("check", False)
    assert not {"deliberation_id", "role", "agent_id", "phase"} & set(after)


async def test_an_inner_id_wins_until_it_ends_and_a_task_keeps_the_ids_it_started_with(as_json: Captured) -> None:
    async def later() -> None:
        await asyncio.sleep(0.01)
        as_json.log.info("late")

    with log_fields(deliberation_id="d3", phase="generate"):
        with log_fields(phase="critique", agent_id="dev-2"):
            as_json.log.info("inner")
            task = asyncio.create_task(later())  # outlives both scopes
        as_json.log.info("outer again")
    await task

    by_message = {line["message"]: line for line in as_json.json()}
    assert (by_message["inner"]["phase"], by_message["inner"]["deliberation_id"]) == ("critique", "d3")
    assert by_message["outer again"]["phase"] == "generate"
    assert "agent_id" not in by_message["outer again"]
    late = by_message["late"]
    assert (late["deliberation_id"], late["phase"], late["agent_id"]) == ("d3", "critique", "dev-2")


def test_a_field_logged_with_the_line_wins_over_the_bound_one(as_json: Captured) -> None:
    with log_fields(deliberation_id="outer"):
        as_json.log.info("event", extra={"deliberation_id": "inner"})

    [line] = as_json.json()
    assert line["deliberation_id"] == "inner"


def test_a_value_json_cannot_hold_is_written_as_text(as_json: Captured) -> None:
    as_json.log.info("odd", extra={"path": Path("/tmp/x"), "ids": {"a", "b"} - {"b"}})

    [line] = as_json.json()
    assert (line["path"], line["ids"]) == ("/tmp/x", "{'a'}")


async def test_tasks_started_in_a_deliberation_log_its_id(as_json: Captured) -> None:
    async def work(name: str) -> None:
        await asyncio.sleep(0)
        as_json.log.info(name)

    outside = asyncio.create_task(work("outside"))
    with log_fields(deliberation_id="d2"):
        inside = asyncio.create_task(work("inside"))
        threaded = asyncio.create_task(asyncio.to_thread(as_json.log.info, "in a thread"))
    await asyncio.gather(outside, inside, threaded)

    by_message = {line["message"]: line.get("deliberation_id") for line in as_json.json()}
    assert by_message == {"outside": None, "inside": "d2", "in a thread": "d2"}


def test_text_lines_keep_their_format_and_name_the_deliberation_they_belong_to(as_text: Captured) -> None:
    as_text.log.info("before")
    with log_fields(deliberation_id="d3", agent_id="dev-1"):
        as_text.log.warning("timed out")

    before, during = as_text.lines()
    logger = as_text.log.name
    assert before.endswith(f" INFO {logger}: before")
    assert during.endswith(f" WARNING {logger}: [deliberation d3] timed out")
    datetime.strptime(before.split(" INFO ")[0], "%Y-%m-%d %H:%M:%S,%f")  # the time, as before


# -- orchestrator serve ---------------------------------------------------------------------


def serve_environment(tmp_path: Path, log_format: LogFormat) -> dict[str, str]:
    """The environment of an ``orchestrator serve`` over the CLI tests' scripted plugin."""
    env = installed_plugins(
        tmp_path / "site", "grpc-cli-test-plugin", {"scripted-cli": "grpc_cli_test_plugin"}, without=("ORCH_", "OTEL_")
    )
    env.update(
        ORCH_PLUGINS_ENABLED="scripted-cli",
        ORCH_COUNCILS__DEV__BACKEND="scripted",
        ORCH_COUNCILS__DEV__AGENTS="2",
        ORCH_DATABASE_PATH=str(tmp_path / "records.sqlite3"),
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
        ORCH_GRACE_PERIOD_SECONDS="5",
        ORCH_LOG_FORMAT=log_format,
    )
    return env


def serve_one_deliberation(env: dict[str, str], stderr_path: Path) -> str:
    """Start ``orchestrator serve``, run one deliberation, stop it with SIGTERM; the id."""
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [orchestrator_command(), "serve"], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=HANG_GUARD):
                pytest.fail(f"orchestrator serve did not start; its log:\n{stderr_path.read_text()}")
        line = process.stdout.readline()
        assert line.startswith(READY_LINE), stderr_path.read_text()
        with grpc.insecure_channel(line.removeprefix(READY_LINE).strip()) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            try:
                response = stub.Deliberate(request(task="Add two numbers, marker 5e2a90"), timeout=HANG_GUARD)
            except grpc.RpcError as error:
                pytest.fail(f"Deliberate failed: {error}; the service's log:\n{stderr_path.read_text()}")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=HANG_GUARD) == 0, stderr_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    deliberation_id: str = response.deliberation_id
    return deliberation_id


def test_serve_with_log_format_json_writes_json_lines_to_stderr(tmp_path: Path) -> None:
    stderr = tmp_path / "serve.log"
    deliberation_id = serve_one_deliberation(serve_environment(tmp_path, "json"), stderr)

    lines = [json.loads(line) for line in stderr.read_text().splitlines()]
    messages = [(line["logger"], line["message"]) for line in lines]
    assert any(logger == "orchestrator_grpc.server" and m.startswith("serving ") for logger, m in messages)
    assert ("orchestrator_grpc.server", "stopped") in messages
    events = {line["event"]: line for line in lines if line["logger"] == EVENTS_LOGGER}
    assert set(events) == {"deliberation_started", "deliberation_finished"}  # INFO: no DEBUG lines
    assert {line["deliberation_id"] for line in events.values()} == {deliberation_id}
    assert events["deliberation_finished"]["status"] == "succeeded"
    assert all(line["level"] in ("INFO", "WARNING") for line in lines)
    assert "5e2a90" not in stderr.read_text()


def test_serve_logs_text_by_default_with_the_deliberation_named(tmp_path: Path) -> None:
    env = serve_environment(tmp_path, "text")
    del env["ORCH_LOG_FORMAT"]
    stderr = tmp_path / "serve.log"
    deliberation_id = serve_one_deliberation(env, stderr)

    lines = stderr.read_text().splitlines()
    assert not any(line.startswith("{") for line in lines)
    tag = f" INFO {EVENTS_LOGGER}: [deliberation {deliberation_id}] "
    started, finished = [line.split(tag, 1)[1] for line in lines if tag in line]
    assert started == "deliberate started: role DEV, 2 agents, 1 rounds"
    assert finished.startswith("deliberate succeeded in ")
