"""Conduct findings of a dry-run: what the proposal's code did besides passing or failing tests.

The sandbox already contains each of these; a finding makes it visible and costs score, so a
proposal that misbehaves never outranks an otherwise equal one that does not.

========== =====================================================================================
CONDUCT001 processes still running when the tests finished (counted by the sandbox's first
           process, which the code cannot reach), or threads still running in pytest's process
CONDUCT002 attempts to write outside the working directory, denied or not (pytest's audit
           hook), and files left in the sandbox's private ``/tmp`` or ``/dev/shm``
CONDUCT003 output beyond what is kept for the diagnostics while every test passed, or a flood
           that got the run killed
CONDUCT004 a resource limit reached: CPU (SIGXCPU, or the CPU time used), file size (SIGXFSZ),
           memory (MemoryError), processes or threads, open files
CONDUCT005 the run was killed at its timeout
========== =====================================================================================
"""

from __future__ import annotations

from agents_contrib.checks.findings import Finding
from agents_contrib.checks.pytest_record import PytestRecord
from agents_contrib.checks.sandbox_run import RunOutcome
from agents_contrib.checks.settings import DryRunSettings

LISTED = 3


def conduct_findings(outcome: RunOutcome, record: PytestRecord, settings: DryRunSettings,
                     quiet_run: bool) -> list[Finding]:
    """The conduct findings of one run, at most one per id, in id order.

    ``quiet_run``: every test passed, so pytest itself printed a line or two; output beyond
    what is kept was then printed by the code (a failing run's tracebacks may be long).
    """
    findings: list[Finding] = []
    left = _left_running(outcome, record)
    if left:
        findings.append(Finding("CONDUCT001", left))
    writes = _writes_outside(outcome, record)
    if writes:
        findings.append(Finding("CONDUCT002", writes))
    if outcome.flooded:
        findings.append(Finding("CONDUCT003", f"printed more than {settings.max_output_bytes} bytes: "
                                              "process group killed"))
    elif quiet_run and outcome.output_total > settings.output_bytes:
        findings.append(Finding("CONDUCT003", f"printed {outcome.output_total} bytes, more than the "
                                              f"{settings.output_bytes} kept"))
    limits = _limits(outcome, record, settings)
    if limits:
        findings.append(Finding("CONDUCT004", "; ".join(limits)))
    if outcome.timed_out:
        findings.append(Finding("CONDUCT005", f"timed out after {settings.timeout_seconds:g}s: "
                                              "process group killed"))
    return findings


def penalised(score: float, findings: list[Finding], settings: DryRunSettings) -> float:
    """``score * max(0, 1 - penalty * findings)``; 0 with any finding under the veto."""
    if not findings:
        return score
    if settings.conduct_veto:
        return 0.0
    return score * max(0.0, 1.0 - settings.conduct_penalty * len(findings))


def _left_running(outcome: RunOutcome, record: PytestRecord) -> str:
    parts: list[str] = []
    launcher = outcome.launcher
    if launcher is not None and launcher.leftover:
        count = launcher.leftover
        verb = "process was" if count == 1 else "processes were"
        parts.append(f"{count} {verb} still running when the tests finished: "
                     f"{_listed(list(launcher.commands), count)}")
    if record.threads > 0:
        verb = "thread was" if record.threads == 1 else "threads were"
        parts.append(f"{record.threads} {verb} still running in pytest's process when the tests finished")
    return "; ".join(parts)


def _writes_outside(outcome: RunOutcome, record: PytestRecord) -> str:
    parts: list[str] = []
    if record.writes_total:
        noun = "attempt" if record.writes_total == 1 else "attempts"
        shown = [f"{operation} {path}" for operation, path in record.writes]
        parts.append(f"{record.writes_total} {noun} to write outside the working directory: "
                     f"{_listed(shown, record.writes_total)}")
    launcher = outcome.launcher
    if launcher is not None and launcher.private_total:
        parts.append(f"{launcher.private_total} files left outside the working directory: "
                     f"{_listed(list(launcher.private_entries), launcher.private_total)}")
    return "; ".join(parts)


def _limits(outcome: RunOutcome, record: PytestRecord, settings: DryRunSettings) -> list[str]:
    limits: list[str] = []
    name = outcome.signal_name
    cpu_used = outcome.launcher.cpu_seconds if outcome.launcher is not None else 0.0
    if name == "SIGXCPU" or (not outcome.timed_out and cpu_used >= settings.cpu_seconds):
        limits.append(f"CPU limit of {settings.cpu_seconds}s reached" + (" (SIGXCPU)" if name == "SIGXCPU" else ""))
    if name == "SIGXFSZ":
        limits.append(f"file size limit of {settings.file_bytes} bytes reached (SIGXFSZ)")
    seen: dict[str, list[str]] = {}
    for limit, test in record.limits:
        seen.setdefault(limit, []).append(test)
    for limit, tests in seen.items():
        limits.append(f"{limit} limit reached in {_listed(tests, len(tests))}")
    return limits


def _listed(items: list[str], total: int) -> str:
    shown = ", ".join(items[:LISTED])
    return shown + (f" and {total - LISTED} more" if total > LISTED else "")
