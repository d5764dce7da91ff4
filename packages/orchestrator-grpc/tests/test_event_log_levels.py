"""The event log's scopes at the level a busy server runs it (WARNING): nothing logged for
what went well, a line for what did not, and the ids bound inside each scope only."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator_core.models import CallOutcome, Phase
from orchestrator_core.telemetry import AgentCallScope, CheckScope, DeliberationScope, PhaseScope
from orchestrator_grpc.observability.event_log import EVENTS_LOGGER, EventLog
from orchestrator_grpc.observability.log_format import log_handler

OTHER_LOGGER = "orchestrator.test.levels"
Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def lines() -> Iterator[Lines]:
    """JSON lines of the events logger (at WARNING) and of another logger (at DEBUG)."""
    buffer = io.StringIO()
    handler = log_handler("json", buffer)
    loggers = [(logging.getLogger(EVENTS_LOGGER), logging.WARNING), (logging.getLogger(OTHER_LOGGER), logging.DEBUG)]
    saved = [(logger, logger.level, logger.propagate) for logger, _ in loggers]
    for logger, level in loggers:
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _scopes(status: str) -> tuple[DeliberationScope, PhaseScope, AgentCallScope, CheckScope]:
    deliberation = DeliberationScope("d-1", "deliberation", "DEV", num_agents=3, rounds=1, status=status)
    phase = PhaseScope("d-1", "DEV", "generate", 0)
    call = AgentCallScope("d-1", "DEV", "dev-1", "scripted", "", Phase.GENERATE, 0, outcome=CallOutcome.OK)
    check = CheckScope("d-1", "DEV", "lint", "lint", "p1", outcome="passed")
    return deliberation, phase, call, check


def test_a_run_that_went_well_logs_nothing_at_warning_and_binds_its_ids_inside_only(
    lines: Lines,
) -> None:
    log = EventLog()
    other = logging.getLogger(OTHER_LOGGER)
    deliberation, phase, call, check = _scopes("succeeded")
    with log.deliberation(deliberation), log.phase(phase), log.agent_call(call), log.check(check):
        other.warning("inside")
    other.warning("after")
    inside, after = [line for line in lines() if line["logger"] == OTHER_LOGGER]
    assert [line for line in lines() if line["logger"] == EVENTS_LOGGER] == []
    assert (inside["deliberation_id"], inside["role"], inside["agent_id"]) == ("d-1", "DEV", "dev-1")
    assert "deliberation_id" not in after
    assert "agent_id" not in after


def test_what_went_wrong_is_logged_at_warning_even_with_info_off(lines: Lines) -> None:
    log = EventLog()
    deliberation, phase, call, check = _scopes("failed")
    call.outcome = CallOutcome.ERROR
    check = CheckScope("d-1", "DEV", "lint", "lint", "p1", outcome="timeout")

    def run() -> None:
        with log.deliberation(deliberation), log.phase(phase):
            with log.agent_call(call), log.check(check):
                pass
            raise RuntimeError("the run failed")

    with pytest.raises(RuntimeError, match="the run failed"):
        run()
    logged = lines()
    assert [(line["event"], line["level"]) for line in logged] == [
        ("check_finished", "WARNING"), ("agent_call_finished", "WARNING"), ("deliberation_finished", "WARNING")
    ]
    assert all(line["deliberation_id"] == "d-1" for line in logged)
