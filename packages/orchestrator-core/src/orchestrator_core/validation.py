"""Checks a deliberation request before any work starts; a bad one changes nothing."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from orchestrator_core.errors import InvalidRequest
from orchestrator_core.models import Task, TaskConstraints
from orchestrator_core.patterns import check_items
from orchestrator_core.settings import Settings

MAX_REQUEST_ID_CHARS = 128
MAX_LIST_ITEMS = 200
MAX_TESTS = 50


@dataclass(frozen=True)
class DeliberationRequest:
    task: Task
    num_agents: int = 0
    rounds: int | None = None
    """Critique/revise rounds; 0 runs none, None runs the server's ``default_rounds``."""
    request_id: str = ""


@dataclass(frozen=True)
class Plan:
    """A request once checked: the normalised task and the council size and rounds to run."""

    task: Task
    num_agents: int
    rounds: int
    request_id: str


def plan(request: DeliberationRequest, task: Task, settings: Settings, council_size: int) -> Plan:
    """The request checked against the settings. ``task`` is the request's task normalised
    (:func:`normalised_task`) by the caller, which needs its role first, to find the council
    whose size a plan defaults to; it is normalised once."""
    if request.num_agents < 0 or request.num_agents > settings.max_agents:
        raise InvalidRequest(
            f"num_agents must be between 1 and {settings.max_agents} (ORCH_MAX_AGENTS), or 0 for the "
            f"council's size; got {request.num_agents}"
        )
    if request.rounds is not None and not 0 <= request.rounds <= settings.max_rounds:
        raise InvalidRequest(
            f"rounds must be between 0 and {settings.max_rounds} (ORCH_MAX_ROUNDS), or unset for the "
            f"server default ({settings.default_rounds}); got {request.rounds}"
        )
    rounds = settings.default_rounds if request.rounds is None else request.rounds
    if task.constraints.max_rounds:
        rounds = min(rounds, task.constraints.max_rounds)
    request_id = request.request_id.strip()
    if len(request_id) > MAX_REQUEST_ID_CHARS or not request_id.isprintable():
        raise InvalidRequest(
            f"request_id must be at most {MAX_REQUEST_ID_CHARS} printable characters"
        )
    return Plan(task, request.num_agents or min(council_size, settings.max_agents), rounds, request_id)


def checked_role(role: str) -> str:
    """The role, upper-cased; empty stays empty (callers decide whether that is allowed)."""
    role = role.strip().upper()
    if role and (len(role) > 64 or not role.replace("_", "").replace("-", "").isalnum()):
        raise InvalidRequest("role must be a short name of letters, digits, '-' and '_'")
    return role


def checked_record_id(deliberation_id: str) -> str:
    deliberation_id = deliberation_id.strip()
    if len(deliberation_id) > MAX_REQUEST_ID_CHARS or not deliberation_id.isprintable():
        raise InvalidRequest(f"deliberation_id must be at most {MAX_REQUEST_ID_CHARS} printable characters")
    return deliberation_id


def normalised_task(task: Task, settings: Settings) -> Task:
    role = checked_role(task.role)
    if not role:
        raise InvalidRequest("role is required (e.g. DEV, QA, ARCHITECT, DEVOPS, DATA)")
    description = task.description.strip()
    if not description:
        raise InvalidRequest("task is required: describe what the council should do")
    if len(description) > settings.max_task_chars:
        raise InvalidRequest(
            f"task is {len(description)} characters; the limit is {settings.max_task_chars} "
            "(ORCH_MAX_TASK_CHARS)"
        )
    return replace(task, role=role, description=description,
                   constraints=_checked_constraints(task.constraints, settings))


def _checked_constraints(constraints: TaskConstraints, settings: Settings) -> TaskConstraints:
    if constraints.max_rounds < 0:
        raise InvalidRequest(f"constraints.max_rounds must not be negative; got {constraints.max_rounds}")
    timeout = constraints.timeout_seconds
    if not math.isfinite(timeout) or timeout < 0:
        raise InvalidRequest(f"constraints.timeout_seconds must be a non-negative number; got {timeout}")
    agent_timeout = constraints.agent_timeout_seconds
    if not math.isfinite(agent_timeout) or agent_timeout < 0:
        raise InvalidRequest(
            f"constraints.agent_timeout_seconds must be a non-negative number; got {agent_timeout}"
        )
    for name in ("requirements", "forbidden"):
        items = getattr(constraints, name)
        if len(items) > MAX_LIST_ITEMS:
            raise InvalidRequest(f"constraints.{name} has {len(items)} items; the limit is {MAX_LIST_ITEMS}")
    if len(constraints.tests) > MAX_TESTS:
        raise InvalidRequest(f"constraints.tests has {len(constraints.tests)} files; the limit is {MAX_TESTS}")
    size = sum(len(t.content) for t in constraints.tests) + len(constraints.rubric)
    size += sum(len(item) for item in (*constraints.requirements, *constraints.forbidden))
    if size > settings.max_task_chars:
        raise InvalidRequest(
            f"constraints are {size} characters; the limit is {settings.max_task_chars} (ORCH_MAX_TASK_CHARS)"
        )
    check_items("requirements", constraints.requirements)
    check_items("forbidden", constraints.forbidden)
    seen: set[str] = set()
    for test in constraints.tests:
        _check_test_path(test.path)
        if test.path in seen:
            raise InvalidRequest(f"constraints.tests names {test.path!r} twice")
        seen.add(test.path)
    return constraints


def agent_timeout(task: Task, server_seconds: float) -> float:
    """The bound on each agent call of ``task``: the server's, or the task's when tighter.

    A phase starts all its calls together, so this also bounds each phase.
    """
    task_seconds = task.constraints.agent_timeout_seconds
    return min(server_seconds, task_seconds) if task_seconds > 0 else server_seconds


def _check_test_path(path: str) -> None:
    pure = PurePosixPath(path)
    if (
        not path
        or "\x00" in path
        or "\\" in path
        or pure.is_absolute()
        or ".." in pure.parts
        or pure.suffix != ".py"
    ):
        raise InvalidRequest(
            f"constraints.tests path {path!r} must be a relative path to a .py file inside the task, "
            "without '..'"
        )


def check_time_range(created_after: float | None, created_before: float | None) -> None:
    """A listing's creation-time bounds: finite, and not the wrong way round."""
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and not math.isfinite(value):
            raise InvalidRequest(f"{name} must be a finite number of seconds since the Unix epoch")
    if created_after is not None and created_before is not None and created_after > created_before:
        raise InvalidRequest(f"created_after ({created_after:g}) is later than created_before ({created_before:g})")
