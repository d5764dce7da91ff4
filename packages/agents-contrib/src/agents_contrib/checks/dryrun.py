"""The ``dryrun`` check: the task's tests run against the proposal's code, in the sandbox.

Without tests, each Python module of the proposal must compile and import. pytest runs with
a recorder of ours (:mod:`.sandbox_pytest`) writing to a descriptor outside the directory.
A test counts as passed only when its passing result was recorded: the score is tests
passed / tests collected, and 0 when the record is incomplete or disagrees with pytest's
JUnit report or exit status (:mod:`.pytest_record`). Conduct findings (:mod:`.conduct`) —
processes left running, writes outside the directory, floods, limits, the timeout — fail
the check and cost ``ORCH_DRYRUN_CONDUCT_PENALTY`` each. The diagnostics say which isolation
was in force, what was run, why tests failed and every problem and finding by its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from agents_contrib.checks.conduct import conduct_findings, penalised
from agents_contrib.checks.findings import Stopwatch
from agents_contrib.checks.junit import ReportError, TestReport, read_report
from agents_contrib.checks.proposal_artifacts import artifacts_of
from agents_contrib.checks.pytest_record import PYTEST_EXIT, PytestRecord, parse_record, run_problems
from agents_contrib.checks.sandbox import Isolation, detect_isolation, make_workdir, remove_workdir
from agents_contrib.checks.sandbox_run import RunOutcome, open_channel, run_sandboxed
from agents_contrib.checks.sandbox_uids import UidPool
from agents_contrib.checks.settings import DryRunSettings
from agents_contrib.checks.workspace import Workspace, plan_workspace
from agents_contrib.plugin_hooks import settings_hooks
from orchestrator_core.models import CheckKind, CheckResult, Proposal, Task

ORCHESTRATOR_PLUGIN_API = ">=1.0,<2"
"""The orchestrator plugin API versions this plugin supports."""

REPORT_PATH = ".report/junit.xml"
PYTEST_RUNNER_SOURCE = Path(__file__).with_name("sandbox_pytest.py").read_text(encoding="utf-8")


@dataclass(frozen=True)
class RunEvidence:
    """Everything one sandboxed pytest run left for the judgement."""

    outcome: RunOutcome
    record: PytestRecord
    junit: TestReport | str


class DryRunCheck:
    """Runs every dry-run it is asked for at once: whoever calls it bounds how many.

    A dry-run is ``heavy``, so the engine runs at most ``ORCH_HEAVY_CHECK_CONCURRENCY`` of
    them at once, and a run waits for its slot *before* the check's timeout starts. A second
    bound in here would make a run that got a slot wait again, inside that timeout, and time
    out for having queued. So this check has no bound of its own, and a caller that runs it
    outside the engine brings its own (as the evaluation's hidden-test judge does). Where the
    sandbox switches users, a run does wait for a free uid of the pool, which
    ``ORCH_DRYRUN_CONCURRENCY`` sizes: it must be at least the callers' bound, so that the wait
    is only ever for other replicas' runs (:mod:`.sandbox_uids`).
    """

    name = "dryrun"
    kind = CheckKind.DRYRUN.value
    heavy = True

    def __init__(self, settings: DryRunSettings | None = None, isolation: Isolation | None = None) -> None:
        self.settings = settings or DryRunSettings()
        self.isolation = isolation or detect_isolation(self.settings)
        self.uids = UidPool.from_settings(self.settings)
        self.running = 0
        """Dry-runs under way (a wait for a uid included); ``peak_running``: the most at once."""
        self.peak_running = 0

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        watch = Stopwatch()
        workspace = plan_workspace(task.constraints.tests, await artifacts_of(proposal))
        header = [self.isolation.describe(self.settings), *workspace.notes]
        if not workspace.tests:
            return self._result(False, 0.0, [*header, "nothing to run: the task has no tests and the "
                                             "proposal no Python code"], watch)
        with self._counted():
            async with self._user() as isolation:
                workdir = await asyncio.to_thread(make_workdir, self.settings, isolation.uid)
                try:
                    await asyncio.to_thread(self._prepare, workspace, workdir, isolation.uid)
                    evidence = await self._execute(isolation, workdir, workspace)
                finally:
                    await asyncio.to_thread(remove_workdir, workdir)
        return self._judge(workspace, evidence, header, watch)

    async def _execute(self, isolation: Isolation, workdir: Path, workspace: Workspace) -> RunEvidence:
        with open_channel("orch-pytest-record") as channel:
            outcome = await run_sandboxed(isolation, workdir, self._pytest(workdir, workspace, channel.fd),
                                          self.settings, pass_fds=(channel.fd,))
            data, truncated = await asyncio.to_thread(channel.read)
        junit: TestReport | str
        try:
            junit = await asyncio.to_thread(read_report, workdir / REPORT_PATH)
        except ReportError as exc:
            junit = str(exc)
        return RunEvidence(outcome, parse_record(data, truncated), junit)

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        try:
            yield
        finally:
            self.running -= 1

    @contextlib.asynccontextmanager
    async def _user(self) -> AsyncIterator[Isolation]:
        """The isolation of one run: with a uid of the pool no other run holds meanwhile (held
        until the run's last process is gone), when the isolation switches users."""
        if self.isolation.uid is None:
            yield self.isolation
            return
        async with self.uids.lease() as uid:
            yield self.isolation.as_user(uid)

    @staticmethod
    def _prepare(workspace: Workspace, workdir: Path, uid: int | None) -> None:
        workspace.write(workdir)
        (workdir / REPORT_PATH).parent.mkdir()
        if uid is not None:
            for path in [workdir, *workdir.rglob("*")]:
                os.chown(path, uid, uid, follow_symlinks=False)

    def _pytest(self, workdir: Path, workspace: Workspace, record_fd: int) -> list[str]:
        config = json.dumps({"report_fd": record_fd, "workdir": str(workdir)})
        return [sys.executable, "-I", "-B", "-c", PYTEST_RUNNER_SOURCE, config,
                "-q", "--color=no", "--tb=short",
                "-p", "no:cacheprovider", "--rootdir", str(workdir), "-o", f"pythonpath={workdir}",
                "-o", "junit_family=xunit2", "-o", "console_output_style=classic",
                f"--junitxml={workdir / REPORT_PATH}",
                *(arg for plugin in self.settings.pytest_plugins for arg in ("-p", plugin)),
                "--", *workspace.tests]

    def _judge(self, workspace: Workspace, evidence: RunEvidence, header: list[str],
               watch: Stopwatch) -> CheckResult:
        outcome, record = evidence.outcome, evidence.record
        lines = list(header)
        what = "imports of the proposal's modules" if workspace.generated_import_test else "the task's tests"
        lines.append(f"ran {what}: {', '.join(workspace.tests)}")
        outcomes = {test: result for test, result in record.outcomes().items() if test in (record.collected or [])}
        counts = {kind: sum(1 for o in outcomes.values() if o == kind)
                  for kind in ("passed", "failed", "error", "skipped")}
        collected = len(record.collected or [])
        if record.collected is not None:
            lines.append(f"tests: {collected} collected: {counts['passed']} passed, {counts['failed']} failed, "
                         f"{counts['error']} errors, {counts['skipped']} skipped")
        failing = [(test, result) for test, result in outcomes.items() if result in ("failed", "error")]
        for test, result in failing[: self.settings.failure_messages]:
            lines.append(f"{result.upper()} {test}: {record.messages.get(test, '')}".rstrip(": "))
        if len(failing) > self.settings.failure_messages:
            lines.append(f"... and {len(failing) - self.settings.failure_messages} more failing tests")
        if record.returned == 5 or record.session_exit == 5:
            lines.append(f"pytest: {PYTEST_EXIT[5]}")
        exit_code = None if outcome.timed_out or outcome.flooded else outcome.exit_status
        problems = run_problems(record, exit_code, self._ended_by(outcome), evidence.junit)
        all_passed = bool(collected) and counts["passed"] == collected and not problems
        findings = conduct_findings(outcome, record, self.settings, quiet_run=all_passed)
        lines += [problem.describe() for problem in problems]
        lines += [finding.describe() for finding in findings]
        score = counts["passed"] / collected if collected and not problems else 0.0
        score = penalised(score, findings, self.settings)
        passed = all_passed and not findings
        if not passed and outcome.output_total:
            lines.append("output:\n" + outcome.output_text())
        return self._result(passed, score, lines, watch)

    @staticmethod
    def _ended_by(outcome: RunOutcome) -> str:
        """What ended the run from outside, if anything did."""
        if outcome.timed_out:
            return "killed at the timeout"
        if outcome.flooded:
            return "killed for flooding its output"
        return f"killed by {outcome.signal_name}" if outcome.signal_name else ""

    def _result(self, passed: bool, score: float, lines: list[str], watch: Stopwatch) -> CheckResult:
        return CheckResult(name=self.name, kind=self.kind, passed=passed, score=score,
                           diagnostics=tuple(lines), duration_seconds=watch.elapsed())


plugin_settings, register_checks_configured, register_checks = settings_hooks(
    "dryrun", DryRunSettings, DryRunCheck, hook="register_checks"
)
