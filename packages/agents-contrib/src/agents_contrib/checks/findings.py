"""A rule's finding about an artifact, worded the same way by every check."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agents_contrib.artifacts import Artifact


@dataclass(frozen=True)
class Finding:
    """One violation: which rule, what it found, and where."""

    rule_id: str
    message: str
    artifact: Artifact | None = None
    line: int = 0

    def describe(self) -> str:
        """E.g. ``PY001 eval() at line 3 of artifact 1 (python)``."""
        where = ""
        if self.artifact is not None:
            where = f" of {self.artifact.label}"
            if self.line:
                where = f" at line {self.line}{where}"
        elif self.line:
            where = f" at line {self.line}"
        return f"{self.rule_id} {self.message}{where}"


class Stopwatch:
    """Monotonic seconds since creation, for a CheckResult's duration."""

    def __init__(self) -> None:
        self._started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._started
