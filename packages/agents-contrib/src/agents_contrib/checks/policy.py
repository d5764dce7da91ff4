"""The ``policy`` check: built-in rules, the task's constraints, and operator policies in Rego.

Built-in rule ids: SEC001-SEC009 (secrets), PY001-PY008 (dangerous Python calls),
REQ001 (a checkable requirement unmet), FORBID001 (a forbidden item present),
SIZE001/SIZE002 (size bounds). Rego policies add their own ids (``REGO:<package>`` or
the ``id`` a policy gives). Any violation fails the check.
"""

from __future__ import annotations

import asyncio
import logging

from agents_contrib.artifacts import Artifact
from agents_contrib.checks.constraint_rules import check_forbidden, check_requirements, check_sizes
from agents_contrib.checks.findings import Finding, Stopwatch
from agents_contrib.checks.proposal_artifacts import artifacts_of
from agents_contrib.checks.python_rules import find_dangerous_calls
from agents_contrib.checks.rego import RegoPolicies, load_policies
from agents_contrib.checks.secret_rules import find_secrets
from agents_contrib.checks.settings import PolicySettings
from agents_contrib.plugin_hooks import settings_hooks
from orchestrator_core.models import CheckKind, CheckResult, Proposal, Task

ORCHESTRATOR_PLUGIN_API = ">=1.0,<2"
"""The orchestrator plugin API versions this plugin supports."""

log = logging.getLogger(__name__)


class PolicyCheck:
    """Judges a proposal against the rules; its policies are compiled when it is built."""

    name = "policy"
    kind = CheckKind.POLICY.value
    heavy = False

    def __init__(self, settings: PolicySettings | None = None) -> None:
        self.settings = settings or PolicySettings()
        self.policies: RegoPolicies | None = None
        if self.settings.dir is not None:
            self.policies = load_policies(self.settings.dir)
            log.info("policy: %d Rego policies loaded from %s: %s", len(self.policies.entry_points),
                     self.settings.dir, ", ".join(self.policies.packages))

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        watch = Stopwatch()
        artifacts = await artifacts_of(proposal)
        violations, notes = await asyncio.to_thread(self.judge, task, proposal, artifacts)
        penalty = self.settings.violation_penalty * len(violations)
        return CheckResult(
            name=self.name,
            kind=self.kind,
            passed=not violations,
            score=max(0.0, 1.0 - penalty),
            diagnostics=tuple([v.describe() for v in violations] + notes),
            duration_seconds=watch.elapsed(),
        )

    def judge(self, task: Task, proposal: Proposal,
              artifacts: tuple[Artifact, ...]) -> tuple[list[Finding], list[str]]:
        """The violations and the notes for a proposal and its artifacts (blocking: run it off
        the event loop)."""
        disabled = frozenset(self.settings.disabled_rules)
        violations = find_secrets(artifacts, disabled) + find_dangerous_calls(artifacts, disabled)
        requirement_violations, notes = check_requirements(task.constraints.requirements, artifacts)
        violations += requirement_violations
        violations += check_forbidden(task.constraints.forbidden, artifacts)
        violations += check_sizes(artifacts, len(proposal.content.encode("utf-8")),
                                  max_artifact=self.settings.max_artifact_bytes,
                                  max_proposal=self.settings.max_proposal_bytes)
        violations = [v for v in violations if v.rule_id not in disabled]
        if self.policies is not None:
            violations += self.policies.evaluate(task, proposal, artifacts)
        if not artifacts:
            notes.append("no artifact: the proposal is empty")
        return violations, notes


plugin_settings, register_checks_configured, register_checks = settings_hooks(
    "policy", PolicySettings, PolicyCheck, hook="register_checks"
)
