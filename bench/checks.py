"""How long each contrib check takes on a typical proposal: a Python function and its tests."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator_core.models import Proposal, Task, TaskConstraints, TaskTest
from orchestrator_core.plugins import PluginHost

PROPOSAL = '''Here is the implementation.

File: slugify.py
```python
"""Turn titles into URL slugs."""

import re


def slugify(title: str) -> str:
    """Lower-case words of the title joined by hyphens."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)
```
'''

TESTS = """from slugify import slugify


def test_words_are_joined_by_hyphens():
    assert slugify("Hello, World") == "hello-world"


def test_empty_title():
    assert slugify("") == ""


def test_digits_are_kept():
    assert slugify("Top 10 Tips") == "top-10-tips"
"""

TASK = Task(
    role="DEV",
    description="Write slugify(title) in slugify.py",
    constraints=TaskConstraints(tests=(TaskTest("test_slugify.py", TESTS),), requirements=("def slugify",)),
)


async def _time_check(check: object, repeats: int) -> tuple[float, bool, float]:
    proposal = Proposal("dev-1-v0", "dev-1", "DEV", PROPOSAL)
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = await check.run(TASK, proposal)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - started)
    assert result is not None
    return statistics.median(times), result.passed, result.score


def run(repeats: int = 5) -> dict[str, dict[str, float]]:
    host = PluginHost()
    host.load_entry_points(enabled=["policy", "lint", "dryrun"])
    host.collect()
    baseline = statistics.median(_plain_pytest_seconds() for _ in range(repeats))
    figures: dict[str, dict[str, float]] = {}
    for check in host.checks:
        seconds, passed, score = asyncio.run(_time_check(check, repeats))
        figures[check.name] = {
            "seconds": seconds,
            "over_plain_pytest": seconds / baseline,
            "passed": float(passed),
            "score": score,
        }
    figures["baseline: the same tests, plain pytest, no sandbox"] = {"seconds": baseline, "over_plain_pytest": 1.0}
    return figures


def _plain_pytest_seconds() -> float:
    """The dry-run's work without its sandbox: pytest on the same files in a temp dir."""
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        (directory / "slugify.py").write_text(PROPOSAL.split("```python\n")[1].split("```")[0])
        (directory / "test_slugify.py").write_text(TESTS)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=directory,
            check=True,
            capture_output=True,
            env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},  # as in the sandbox
        )
        return time.perf_counter() - started


if __name__ == "__main__":
    for name, values in run().items():
        print(name, {k: round(v, 4) for k, v in values.items()})
