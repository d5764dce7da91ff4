"""The ``dryrun`` check: the task's tests run against the proposal's code, in the sandbox.

Without tests, each Python module of the proposal must compile and import. The score is
the ratio of tests passed (from pytest's JUnit report); the diagnostics say which
isolation was in force, what was run, and why tests failed or the run was stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from agents_contrib.artifacts import extract_artifacts
from agents_contrib.checks.findings import Stopwatch
from agents_contrib.checks.junit import ReportError, TestReport, read_report
from agents_contrib.checks.sandbox import Isolation, detect_isolation, make_workdir, remove_workdir
from agents_contrib.checks.sandbox_run import RunOutcome, run_sandboxed
from agents_contrib.checks.settings import DryRunSettings
from agents_contrib.checks.workspace import Workspace, plan_workspace
from orchestrator_core.hookspecs import RegisterCheck, hookimpl
from orchestrator_core.models import CheckKind, CheckResult, Proposal, Task

REPORT_PATH = ".report/junit.xml"
PYTEST_EXIT = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


class DryRunCheck:
    name = "dryrun"
    kind = CheckKind.DRYRUN.value
    heavy = True

    def __init__(self, settings: DryRunSettings | None = None, isolation: Isolation | None = None) -> None:
        self.settings = settings or DryRunSettings()
        self.isolation = isolation or detect_isolation(self.settings)
        self.running = 0
        self.peak_running = 0
        self._slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        watch = Stopwatch()
        workspace = plan_workspace(task.constraints.tests, extract_artifacts(proposal.content))
        header = [self.isolation.describe(self.settings), *workspace.notes]
        if not workspace.tests:
            return self._result(False, 0.0, [*header, "nothing to run: the task has no tests and the "
                                             "proposal no Python code"], watch)
        async with self._slot():
            workdir = await asyncio.to_thread(make_workdir, self.settings, self.isolation.uid)
            try:
                await asyncio.to_thread(self._prepare, workspace, workdir)
                outcome = await run_sandboxed(self.isolation, workdir, self._pytest(workdir, workspace),
                                              self.settings)
                report: TestReport | str
                try:
                    report = await asyncio.to_thread(read_report, workdir / REPORT_PATH)
                except ReportError as exc:
                    report = str(exc)
            finally:
                await asyncio.to_thread(remove_workdir, workdir)
        return self._judge(workspace, outcome, report, header, watch)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """At most ``settings.concurrency`` dry-runs at once (one semaphore per event loop)."""
        loop = asyncio.get_running_loop()
        slots = self._slots.setdefault(loop, asyncio.Semaphore(self.settings.concurrency))
        async with slots:
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
            try:
                yield
            finally:
                self.running -= 1

    def _prepare(self, workspace: Workspace, workdir: Path) -> None:
        workspace.write(workdir)
        (workdir / REPORT_PATH).parent.mkdir()
        uid = self.isolation.uid
        if uid is not None:
            for path in [workdir, *workdir.rglob("*")]:
                os.chown(path, uid, uid, follow_symlinks=False)

    def _pytest(self, workdir: Path, workspace: Workspace) -> list[str]:
        return [sys.executable, "-I", "-B", "-m", "pytest", "-q", "--color=no", "--tb=short",
                "-p", "no:cacheprovider", "--rootdir", str(workdir), "-o", f"pythonpath={workdir}",
                "-o", "junit_family=xunit2", "-o", "console_output_style=classic",
                f"--junitxml={workdir / REPORT_PATH}",
                *(arg for plugin in self.settings.pytest_plugins for arg in ("-p", plugin)),
                "--", *workspace.tests]

    def _judge(self, workspace: Workspace, outcome: RunOutcome, report: TestReport | str,
               header: list[str], watch: Stopwatch) -> CheckResult:
        lines = list(header)
        what = "imports of the proposal's modules" if workspace.generated_import_test else "the task's tests"
        lines.append(f"ran {what}: {', '.join(workspace.tests)}")
        stopped = self._stopped(outcome)
        if stopped:
            lines.append(stopped)
        passed = False
        score = 0.0
        if isinstance(report, TestReport):
            lines.append(f"tests: {report.passed} passed, {report.failed} failed, {report.errors} errors, "
                         f"{report.skipped} skipped")
            failures = report.failures[: self.settings.failure_messages]
            lines += [failure.describe() for failure in failures]
            if len(report.failures) > len(failures):
                lines.append(f"... and {len(report.failures) - len(failures)} more failing tests")
            if not stopped:
                score = report.pass_ratio
                passed = report.ran > 0 and report.passed == report.ran and outcome.returncode == 0
        else:
            lines.append(f"no result: {report}")
        if outcome.returncode in PYTEST_EXIT and not stopped:
            lines.append(f"pytest: {PYTEST_EXIT[outcome.returncode]}")
        if not passed and outcome.output_total:
            lines.append("output:\n" + outcome.output_text())
        return self._result(passed, score, lines, watch)

    def _stopped(self, outcome: RunOutcome) -> str:
        """Why the run was stopped before it finished on its own, if it was."""
        if outcome.timed_out:
            return f"stopped: timed out after {self.settings.timeout_seconds:g}s, process group killed"
        if outcome.flooded:
            return f"stopped: printed more than {self.settings.max_output_bytes} bytes, process group killed"
        name = outcome.signal_name
        if name == "SIGXCPU":
            return f"stopped: CPU limit of {self.settings.cpu_seconds}s reached (SIGXCPU)"
        if name:
            return f"stopped: killed by {name}"
        return ""

    def _result(self, passed: bool, score: float, lines: list[str], watch: Stopwatch) -> CheckResult:
        return CheckResult(name=self.name, kind=self.kind, passed=passed, score=score,
                           diagnostics=tuple(lines), duration_seconds=watch.elapsed())


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    register(DryRunCheck())
