"""Proposals for the dry-run's conduct and report-integrity batteries: a ``calc`` module,
correct or wrong, with hostile code added, judged against the four calc tests."""

from __future__ import annotations

from checks_support import CALC_TESTS, proposal, python_block, task

from agents_contrib.checks.dryrun import DryRunCheck
from orchestrator_core.models import CheckResult

GOOD_CALC = ("def add(a, b):\n    return a + b\n\n\n"
             "def mean(values):\n    return sum(values) / len(values) if values else 0\n")
WRONG_CALC = "def add(a, b):\n    return a - b\n\n\ndef mean(values):\n    return -1\n"
CLEAN_SCORE = 1.0
"""What the clean correct proposal scores (asserted by the batteries' first test)."""
WRONG_SCORE = 0.0
"""What the clean wrong proposal scores (asserted likewise)."""


async def judge(check: DryRunCheck, calc: str, hostile: str = "") -> CheckResult:
    """The dry-run of ``calc.py`` made of ``calc`` followed by ``hostile`` (run at import)."""
    source = calc + ("\n\n" + hostile if hostile else "")
    return await check.run(task(tests=CALC_TESTS), proposal(python_block(source, "calc.py")))


def lines_with(result: CheckResult, rule_id: str) -> list[str]:
    return [line for line in result.diagnostics if line.startswith(rule_id + " ")]
