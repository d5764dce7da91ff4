"""Read pytest's JUnit XML report (``--junitxml``): counts and the failing tests' messages.

The report is written inside the sandbox, so it is untrusted input: it is read only up to
a size bound and parsed with the standard library's expat, which resolves no external
entity and (expat >= 2.4.1) refuses entity-expansion bombs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

MAX_REPORT_BYTES = 4 * 1024 * 1024
MESSAGE_CHARS = 300


class ReportError(ValueError):
    """The report is missing, too large or not a JUnit report."""


@dataclass(frozen=True)
class TestFailure:
    test: str
    outcome: str
    message: str

    def describe(self) -> str:
        return f"{self.outcome.upper()} {self.test}: {self.message}"


@dataclass(frozen=True)
class TestReport:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: tuple[TestFailure, ...] = field(default_factory=tuple)

    @property
    def ran(self) -> int:
        return self.passed + self.failed + self.errors

    @property
    def pass_ratio(self) -> float:
        return self.passed / self.ran if self.ran else 0.0


def read_report(path: Path) -> TestReport:
    """Parse the report at ``path`` (blocking: small file, call it in a thread)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise ReportError(f"no test report ({exc.strerror})") from exc
    if len(data) > MAX_REPORT_BYTES:
        raise ReportError(f"test report larger than {MAX_REPORT_BYTES} bytes")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise ReportError(f"test report is not valid XML: {exc}") from exc
    cases = root.iter("testcase")
    passed = failed = errors = skipped = 0
    failures: list[TestFailure] = []
    for case in cases:
        name = "::".join(part for part in (case.get("classname", ""), case.get("name", "")) if part)
        outcome = _outcome(case)
        if outcome == "passed":
            passed += 1
        elif outcome == "skipped":
            skipped += 1
        else:
            if outcome == "failed":
                failed += 1
            else:
                errors += 1
            failures.append(TestFailure(name, outcome, _message(case, outcome)))
    if root.tag not in ("testsuites", "testsuite"):
        raise ReportError(f"test report has root <{root.tag}>, not <testsuites>")
    return TestReport(passed, failed, errors, skipped, tuple(failures))


def _outcome(case: ElementTree.Element) -> str:
    if case.find("error") is not None:
        return "error"
    if case.find("failure") is not None:
        return "failed"
    if case.find("skipped") is not None:
        return "skipped"
    return "passed"


def _message(case: ElementTree.Element, outcome: str) -> str:
    element = case.find("failure" if outcome == "failed" else "error")
    if element is None:
        return ""
    message = (element.get("message") or element.text or "").strip()
    message = " ".join(message.split())
    return message if len(message) <= MESSAGE_CHARS else message[:MESSAGE_CHARS] + "…"
