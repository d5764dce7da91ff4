"""What a deliberation already did, read back from its record, so a run that resumes it (its
worker was lost, its message delivered again) makes no completed agent call or check twice.

The engine writes each agent call to the record as it ends (an :class:`AgentCall` in
``record.calls``), together with what it produced: a proposal, a critique or the failure that
took the agent out; and each check's result as the check ends. A call is journaled when both
are in the record: its reply rebuilt from the product (the text, and the tokens and
truncation the call recorded), or its failure. A call cut short (outcome ``cancelled``)
produced nothing and is made again; so is a call whose product did not reach the record.
The selection is not journaled: it is made again by a run that resumes before its end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from orchestrator_core.models import AgentCall, AgentFailure, AgentReply, CallOutcome, CheckResult, Phase
from orchestrator_core.records.model import DeliberationRecord

CallKey = tuple[str, Phase, int]
"""An agent call of a deliberation: the agent's id, the phase and the round (0 for generate)."""

_DELIBERATING = (Phase.GENERATE, Phase.CRITIQUE, Phase.REVISE)


@dataclass(frozen=True)
class JournaledCall:
    """One completed agent call: its record, and the reply it returned or the failure it ended
    in. ``position`` is its place in ``record.calls``, the order the calls ended in."""

    call: AgentCall
    result: AgentReply | AgentFailure
    position: int = 0

    @property
    def plugin_bug(self) -> bool:
        """The call failed by a bug in the backend's code."""
        return self.call.outcome is CallOutcome.BUG


@dataclass(frozen=True)
class Journal:
    """Completed agent calls by (agent id, phase, round) and completed checks by (proposal id,
    check name)."""

    calls: Mapping[CallKey, JournaledCall] = field(default_factory=dict)
    checks: Mapping[tuple[str, str], CheckResult] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: DeliberationRecord) -> Journal:
        """The completed calls and checks ``record`` holds (see the module's docstring)."""
        products = _Products(record)
        calls: dict[CallKey, JournaledCall] = {}
        for position, call in enumerate(record.calls):
            key = (call.agent_id, call.phase, call.round)
            if call.phase not in _DELIBERATING or call.outcome is CallOutcome.CANCELLED or key in calls:
                continue
            result = products.reply(call) if call.outcome is CallOutcome.OK else products.failure(call)
            if result is not None:
                calls[key] = JournaledCall(call, result, position)
        checks = {(checked.proposal_id, checked.result.name): checked.result for checked in record.checks}
        return cls(calls, checks)

    @property
    def empty(self) -> bool:
        return not self.calls and not self.checks

    def call(self, agent_id: str, phase: Phase, round_number: int) -> JournaledCall | None:
        return self.calls.get((agent_id, phase, round_number))

    def reply(self, agent_id: str, phase: Phase, round_number: int) -> AgentReply | AgentFailure | None:
        """What the call returned (its reply) or how it failed; None when it is not journaled."""
        journaled = self.call(agent_id, phase, round_number)
        return None if journaled is None else journaled.result

    def check(self, proposal_id: str, check_name: str) -> CheckResult | None:
        return self.checks.get((proposal_id, check_name))


class _Products:
    """The proposals, critiques and failures of a record, found by the call that made them."""

    def __init__(self, record: DeliberationRecord) -> None:
        self._proposals = {(p.author_id, p.revision): p for p in record.proposals}
        self._critiques = {(c.critic_id, c.round): c for c in record.critiques}
        self._failures = {(f.agent_id, f.phase, f.round): f for f in record.failures}
        self._revisions = revision_numbers(record.calls)

    def reply(self, call: AgentCall) -> AgentReply | None:
        text, truncated = "", call.truncated
        if call.phase is Phase.CRITIQUE:
            critique = self._critiques.get((call.agent_id, call.round))
            if critique is None:
                return None
            text = critique.content
        else:
            revision = 0 if call.phase is Phase.GENERATE else self._revisions[(call.agent_id, call.round)]
            proposal = self._proposals.get((call.agent_id, revision))
            if proposal is None:
                return None
            text, truncated = proposal.content, proposal.truncated
        return AgentReply(text=text, usage=call.usage, truncated=truncated, model=call.model)

    def failure(self, call: AgentCall) -> AgentFailure | None:
        return self._failures.get((call.agent_id, call.phase, call.round))


def revision_numbers(calls: Iterable[AgentCall]) -> dict[tuple[str, int], int]:
    """The revision each successful revise call made: an author's n-th revision (rounds where
    it got no feedback have no revise call, so the revision is not always the round)."""
    rounds: dict[str, set[int]] = {}
    for call in calls:
        if call.phase is Phase.REVISE and call.outcome is CallOutcome.OK:
            rounds.setdefault(call.agent_id, set()).add(call.round)
    return {
        (agent_id, round_number): revision
        for agent_id, done in rounds.items()
        for revision, round_number in enumerate(sorted(done), start=1)
    }
