"""What a deliberation already did, read back from its record, so a run that resumes it (its
worker was lost, its message delivered again) makes no completed agent call or check twice.

(Skeleton: the engine's use of it comes with the resume work; an empty journal resumes
nothing.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator_core.models import AgentFailure, AgentReply, CheckResult, Phase
from orchestrator_core.records.model import DeliberationRecord


@dataclass(frozen=True)
class Journal:
    """Completed agent calls by (agent id, phase, round) — a reply, or the failure that took
    the agent out — and completed checks by (proposal id, check name)."""

    replies: dict[tuple[str, Phase, int], AgentReply | AgentFailure] = field(default_factory=dict)
    checks: dict[tuple[str, str], CheckResult] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: DeliberationRecord) -> Journal:
        return cls()

    @property
    def empty(self) -> bool:
        return not self.replies and not self.checks

    def reply(self, agent_id: str, phase: Phase, round_number: int) -> AgentReply | AgentFailure | None:
        return self.replies.get((agent_id, phase, round_number))

    def check(self, proposal_id: str, check_name: str) -> CheckResult | None:
        return self.checks.get((proposal_id, check_name))
