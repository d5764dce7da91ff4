"""Read what the sandbox's pytest recorder wrote (``sandbox_pytest``), and judge whether it holds.

The record is written inside the sandbox by a plugin sharing its process with the code under
test, so it is untrusted input: it is size-bounded, each line is parsed on its own, and a line
that is not one of ours makes the record inconsistent. A test counts as passed only when its
passing result was recorded. The record is then cross-checked with pytest's JUnit report and
the real exit status of the process; any gap or disagreement is a :class:`RunProblem`, and a
run with a problem fails with score 0 — a proposal that breaks pytest never scores above
one whose tests merely failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agents_contrib.checks.junit import TestReport

PYTEST_EXIT = {0: "all tests passed", 1: "tests failed", 2: "interrupted", 3: "internal error", 4: "usage error",
               5: "no tests collected"}
LISTED = 3


@dataclass(frozen=True)
class RunProblem:
    """Why the record of a run cannot be trusted as complete."""

    rule_id: str
    message: str

    def describe(self) -> str:
        return f"{self.rule_id} {self.message}"


@dataclass
class PytestRecord:
    """The facts the recorder wrote, one JSON line each."""

    collected: list[str] | None = None
    phases: dict[str, dict[str, str]] = field(default_factory=dict)
    """Outcome of each test's setup, call and teardown, by node id."""
    messages: dict[str, str] = field(default_factory=dict)
    collect_errors: list[tuple[str, str]] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)
    limits: list[tuple[str, str]] = field(default_factory=list)
    """(limit, test) for each test whose exception shows a resource limit."""
    writes: list[tuple[str, str]] = field(default_factory=list)
    """(operation, path) of the first attempts to write outside the directory."""
    writes_total: int = 0
    session_exit: int | None = None
    threads: int = 0
    """Threads besides the main one still running when the session finished."""
    returned: int | None = None
    unreadable: int = 0
    truncated: bool = False

    @property
    def empty(self) -> bool:
        return self.collected is None and not self.phases and not self.collect_errors and self.returned is None

    def outcomes(self) -> dict[str, str]:
        """The outcome of every test with a result: passed, failed, error or skipped."""
        results: dict[str, str] = {}
        for test, phases in self.phases.items():
            setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
            if setup == "failed":
                results[test] = "error"
            elif setup == "skipped":
                results[test] = "skipped"
            elif call is not None:
                results[test] = "error" if call == "passed" and teardown == "failed" else call
        return results


def parse_record(data: bytes, truncated: bool = False) -> PytestRecord:
    record = PytestRecord(truncated=truncated)
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict) or not _take(record, raw):
                record.unreadable += 1
        except (ValueError, TypeError, KeyError):
            record.unreadable += 1
    record.writes_total = max(record.writes_total, len(record.writes))
    return record


def _take(record: PytestRecord, raw: dict[str, Any]) -> bool:
    if "collected" in raw:
        record.collected = [str(nodeid) for nodeid in raw["collected"]]
    elif "test" in raw and "when" in raw:
        test = str(raw["test"])
        record.phases.setdefault(test, {})[str(raw["when"])] = str(raw["outcome"])
        if "message" in raw:
            record.messages.setdefault(test, str(raw["message"]))
    elif "collect_error" in raw:
        record.collect_errors.append((str(raw["collect_error"]), str(raw.get("message", ""))))
    elif "internal_error" in raw:
        record.internal_errors.append(str(raw["internal_error"]))
    elif "limit" in raw:
        record.limits.append((str(raw["limit"]), str(raw["test"])))
    elif "write_outside" in raw:
        record.writes.append((str(raw["write_outside"]), str(raw["path"])))
    elif "session_exit" in raw:
        record.session_exit = int(raw["session_exit"])
        record.threads = int(raw.get("threads", 0))
    elif "returned" in raw:
        record.returned = int(raw["returned"])
        record.writes_total = int(raw.get("writes_outside", 0))
    else:
        return False
    return True


def run_problems(record: PytestRecord, exit_code: int | None, ended_by: str,
                 junit: TestReport | str) -> list[RunProblem]:
    """Every reason the record is not a complete, consistent account of the run.

    ``exit_code`` is the process's exit status (None if it was killed from outside), and
    ``ended_by`` the signal that ended it, or why it was stopped, if anything did.
    """
    problems: list[RunProblem] = []
    how = ended_by or (f"exit status {exit_code}" if exit_code is not None else "no exit status")
    if record.empty:
        return [RunProblem("REPORT001", f"pytest recorded nothing ({how})")]
    for where, message in record.collect_errors[:LISTED]:
        problems.append(RunProblem("REPORT002", f"collection error in {where}: {message}"))
    if len(record.collect_errors) > LISTED:
        more = len(record.collect_errors) - LISTED
        problems.append(RunProblem("REPORT002", f"... and {more} more collection errors"))
    for message in record.internal_errors[:LISTED]:
        problems.append(RunProblem("REPORT003", f"pytest internal error: {message}"))
    outcomes = record.outcomes()
    collected = record.collected or []
    missing = [test for test in collected if test not in outcomes]
    if missing:
        problems.append(RunProblem("REPORT004", f"{len(missing)} of {len(collected)} collected tests reported no "
                                                f"result: {', '.join(missing[:LISTED])}"))
    if record.collected is None and not record.collect_errors:
        problems.append(RunProblem("REPORT004", "pytest never reported what it collected"))
    if record.session_exit is None or record.returned is None:
        problems.append(RunProblem("REPORT005", f"pytest did not finish its session ({how})"))
    problems += _disagreements(record, outcomes, exit_code)
    problems += _junit_disagreements(record, outcomes, junit)
    return problems


def _disagreements(record: PytestRecord, outcomes: dict[str, str], exit_code: int | None) -> list[RunProblem]:
    found: list[str] = []
    strangers = [test for test in outcomes if test not in (record.collected or [])]
    if strangers:
        found.append(f"results for tests never collected: {', '.join(strangers[:LISTED])}")
    if record.unreadable:
        found.append(f"{record.unreadable} lines of the record are not the recorder's")
    if record.truncated:
        found.append("the record is larger than any honest run writes")
    if record.returned is not None and exit_code is not None and record.returned != exit_code:
        found.append(f"pytest returned {record.returned}, but its process exited with status {exit_code}")
    status = record.returned if record.returned is not None else record.session_exit
    bad = sum(1 for outcome in outcomes.values() if outcome in ("failed", "error"))
    if status == 0 and (bad or record.collect_errors or record.internal_errors):
        found.append(f"exit status 0, but {bad} tests failed or erred")
    if status == 1 and not bad:
        found.append("exit status 1 (tests failed), but every reported test passed")
    if status is not None and status > 1 and not (record.collect_errors or record.internal_errors) \
            and status != 5:
        found.append(f"exit status {status} ({PYTEST_EXIT.get(status, 'unknown')})")
    return [RunProblem("REPORT006", f"the record disagrees with pytest's exit status: {text}") for text in found]


def _junit_disagreements(record: PytestRecord, outcomes: dict[str, str], junit: TestReport | str) -> list[RunProblem]:
    if record.session_exit is None:
        return []  # pytest writes its JUnit report when the session finishes: it did not
    if isinstance(junit, str):
        return [RunProblem("REPORT007", f"the session finished, but pytest's JUnit report is unusable: {junit}")]
    passed = sum(1 for outcome in outcomes.values() if outcome == "passed")
    if junit.passed != passed:
        return [RunProblem("REPORT007", f"pytest's JUnit report counts {junit.passed} passed tests, the record "
                                        f"{passed}")]
    return []
