"""Parts of a prompt worked out from the task: which files to write, and its constraints.

Small models follow a prompt that names the file and the form of the answer, and lose their
way in long sections saying "(none)". So the deliverable is spelled out (the modules the
task's tests import are the files to write), and only the constraints the task has are shown.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import PurePosixPath

from agents_contrib.checks.workspace import imported_modules
from orchestrator_core.models import Task, TaskTest

TEST_LIBRARIES = frozenset({"pytest", "hypothesis", "unittest"})


def files_to_write(tests: Sequence[TaskTest]) -> list[str]:
    """The Python files a proposal must provide: the modules the tests import that neither
    the standard library, a test library nor the tests themselves provide, in order."""
    own = {PurePosixPath(test.path).with_suffix("").name for test in tests}
    return [
        f"{module}.py" for module in imported_modules(tests)
        if module not in sys.stdlib_module_names and module not in TEST_LIBRARIES and module not in own
    ]


def deliverable(task: Task) -> str:
    """What to write and in which form, as an instruction."""
    files = files_to_write(task.constraints.tests)
    if len(files) == 1:
        return (
            f"Write the complete file {files[0]}. Answer with the line `File: {files[0]}`, then its code "
            f"in one ```python fenced code block, and nothing else."
        )
    if files:
        names = ", ".join(files[:-1]) + f" and {files[-1]}"
        return (
            f"Write the complete files {names}. For each, answer with the line `File: <name>`, then its "
            f"code in one ```python fenced code block, and nothing else."
        )
    return (
        "For each file, answer with the line `File: <relative path>`, then its complete content in one "
        "fenced code block with a language tag (```python, ```yaml, ```sql, ...), and nothing else."
    )


def constraints(task: Task) -> str:
    """The rubric, requirements and forbidden items the task has, each on lines of its own after
    a line break; empty when it has none (so a template writes ``$task$constraints``)."""
    given = task.constraints
    parts: list[str] = []
    if given.rubric.strip():
        parts.append(f"Judged by: {given.rubric.strip()}")
    requirements = [item.strip() for item in given.requirements if item.strip()]
    if requirements:
        parts.append("Requirements:\n" + "\n".join(f"- {item}" for item in requirements))
    forbidden = [item.strip() for item in given.forbidden if item.strip()]
    if forbidden:
        parts.append("Forbidden:\n" + "\n".join(f"- {item}" for item in forbidden))
    return "".join(f"\n{part}" for part in parts)
