"""Clients' ``re:`` constraints: compiled by RE2, refused at request time when RE2 cannot run them."""

from __future__ import annotations

import pytest

from orchestrator_core.errors import InvalidRequest
from orchestrator_core.models import Task, TaskConstraints
from orchestrator_core.patterns import compiled, pattern_of
from orchestrator_core.settings import Settings
from orchestrator_core.validation import normalised_task


def task_with(requirements: tuple[str, ...] = (), forbidden: tuple[str, ...] = ()) -> Task:
    return Task(role="DEV", description="Add two numbers",
                constraints=TaskConstraints(requirements=requirements, forbidden=forbidden))


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "invalid escape sequence: \\1"),
        ("(?P<n>a)(?P=n)", "invalid perl operator: (?P"),
        ("foo(?=bar)", "invalid perl operator: (?="),
        ("foo(?!bar)", "invalid perl operator: (?!"),
        ("(?<=a)b", "invalid perl operator: (?<="),
        ("(?<!a)b", "invalid perl operator: (?<!"),
        ("a{1001}", "invalid repetition size: {1001}"),
        ("((a{100}){100}){100}", "invalid repetition size"),
        ("[", "missing ]"),
    ],
)
@pytest.mark.parametrize("field", ["requirements", "forbidden"])
def test_a_pattern_re2_refuses_is_an_invalid_request_naming_it(field: str, pattern: str, reason: str) -> None:
    the_task = task_with(**{field: ("import:os", "re:" + pattern)})
    with pytest.raises(InvalidRequest) as refused:
        normalised_task(the_task, Settings())
    message = str(refused.value)
    assert message.startswith(f"constraints.{field}: pattern {pattern!r} is not one the server can run: ")
    assert reason in message
    assert "RE2 syntax" in message


@pytest.mark.parametrize("pattern", ["(.*\\s*)*Z$", "(a+)+$", "(a|aa)+$", "(x+x+)+y", "^def \\w+", "(?i)TODO"])
def test_patterns_re2_can_run_are_accepted_whatever_a_backtracking_engine_would_do(pattern: str) -> None:
    the_task = task_with(requirements=("re:" + pattern,), forbidden=(" re : " + pattern,))
    assert normalised_task(the_task, Settings()).constraints == the_task.constraints


def test_items_of_other_kinds_are_not_patterns() -> None:
    assert [pattern_of(item) for item in ("re:a(", " re : x ", "re:", "import:re", "(a)\\1", "regex:(")] == [
        "a(", "x", None, None, None, None]
    # A forbidden phrase that is not a valid pattern is not refused: it is matched literally.
    normalised_task(task_with(forbidden=("(a)\\1", "foo(?=bar)")), Settings())


def test_catastrophic_patterns_answer_on_long_text() -> None:
    text = ("a" * 20_000 + " " + "x" * 20_000 + "\n") * 5
    assert [compiled(p).search(text) for p in ("(.*\\s*)*Z$", "(a+)+$", "(a|aa)+$", "(x+x+)+y")] == [None] * 4
    found = compiled("a+ x+$").search(text)
    assert found is not None
    assert found.start() == 0
