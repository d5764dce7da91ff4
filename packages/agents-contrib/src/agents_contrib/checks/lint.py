"""The ``lint`` check: ruff for Python, yamllint and Kubernetes schemas for YAML, JSON parsing.

An artifact in a language no linter covers is reported as not linted. The score is the
mean of the linted artifacts' scores; a proposal with nothing to lint fails with score 0,
since there is nothing the check could vouch for.
"""

from __future__ import annotations

import asyncio

from agents_contrib.artifacts import Artifact
from agents_contrib.checks.findings import Stopwatch
from agents_contrib.checks.linters import LintReport, linters_by_language, summarise
from agents_contrib.checks.proposal_artifacts import artifacts_of
from agents_contrib.checks.settings import LintSettings
from agents_contrib.plugin_hooks import settings_hooks
from orchestrator_core.models import CheckKind, CheckResult, Proposal, Task

ORCHESTRATOR_PLUGIN_API = ">=1.0,<2"
"""The orchestrator plugin API versions this plugin supports."""


class LintCheck:
    name = "lint"
    kind = CheckKind.LINT.value
    heavy = False

    def __init__(self, settings: LintSettings | None = None) -> None:
        self.settings = settings or LintSettings()
        self.linters = linters_by_language(self.settings)

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        watch = Stopwatch()
        artifacts = await artifacts_of(proposal)
        linted = [a for a in artifacts if a.language in self.linters]
        async with asyncio.timeout(self.settings.timeout_seconds):
            reports = await asyncio.gather(*(self.linters[a.language].lint(a) for a in linted))
        problems: list[str] = []
        notes: list[str] = []
        for artifact, report in zip(linted, reports, strict=True):
            problems += [p.describe(artifact) for p in report.problems]
            notes += list(report.notes)
            notes.append(_verdict(artifact, report))
        notes += [f"{a.label}: not linted (no linter for {a.language})"
                  for a in artifacts if a.language not in self.linters]
        if not linted:
            notes.append("nothing linted: no artifact in a language with a linter ("
                         + ", ".join(sorted(self.linters)) + ")")
        score = sum(r.score for r in reports) / len(reports) if reports else 0.0
        return CheckResult(
            name=self.name,
            kind=self.kind,
            passed=bool(reports) and all(r.passed for r in reports),
            score=score,
            diagnostics=tuple(summarise(problems) + notes),
            duration_seconds=watch.elapsed(),
        )


def _verdict(artifact: Artifact, report: LintReport) -> str:
    state = "does not parse" if report.unparsable else ("passed" if report.passed else "failed")
    return f"{artifact.label}: {report.tool} {state}, {len(report.problems)} problems, score {report.score:.2f}"


plugin_settings, register_checks_configured, register_checks = settings_hooks(
    "lint", LintSettings, LintCheck, hook="register_checks"
)
