"""A live view of a deliberation, built from its events: one row per agent."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.spinner import Spinner
from rich.table import Table

from orchestrator_core import events
from orchestrator_grpc.cli.display import plain


@dataclass
class _AgentRow:
    proposal_id: str = ""
    revision: int = 0
    critiques_written: int = 0
    critiques_received: int = 0
    checks_passed: int = 0
    checks_run: int = 0
    state: str = "generating"
    rank: int = 0
    score: float | None = None


class DeliberationProgress:
    """A rich renderable; feed it events with :meth:`update`."""

    def __init__(self, role: str, agents: int = 0) -> None:
        self.role = role
        self.expected_agents = agents
        self.phase = "generate"
        self.rows: dict[str, _AgentRow] = {}
        self._authors: dict[str, str] = {}  # proposal_id -> author_id
        self.done = False

    def update(self, event: events.DeliberationEvent) -> None:
        match event:
            case events.ProposalGenerated(proposal=proposal) | events.ProposalRevised(proposal=proposal):
                row = self._row(proposal.author_id)
                row.proposal_id, row.revision = proposal.proposal_id, proposal.revision
                row.state = "revised" if proposal.revision else "proposed"
                self._authors[proposal.proposal_id] = proposal.author_id
                if proposal.revision:
                    self.phase = f"revise (round {proposal.revision})"
            case events.CritiqueWritten(critique=critique):
                self.phase = f"critique (round {critique.round})"
                self._row(critique.critic_id).critiques_written += 1
                self._row(critique.author_id).critiques_received += 1
            case events.CheckCompleted(proposal_id=proposal_id, result=result):
                self.phase = "checks"
                row = self._row(self._authors.get(proposal_id, proposal_id))
                row.checks_run += 1
                row.checks_passed += int(result.passed)
                row.state = "checking"
            case events.AgentFailed(failure=failure):
                row = self._row(failure.agent_id)
                row.state = f"failed in {failure.phase.value}: {failure.error}"
            case events.RankingReady(outcome=outcome):
                self.phase = "ranked"
                self.done = True
                for ranked in outcome.results:
                    row = self._row(ranked.proposal.author_id)
                    row.rank, row.score, row.state = ranked.rank, ranked.score, "ranked"

    def _row(self, agent_id: str) -> _AgentRow:
        return self.rows.setdefault(agent_id, _AgentRow())

    def __rich__(self) -> RenderableType:
        heading = plain(f"{self.role} council — {self.phase}", style="bold")
        title: RenderableType = heading if self.done else Spinner("dots", text=heading)
        table = Table("agent", "proposal", "critiques out/in", "checks passed", "rank", "score", "state")
        for agent_id, row in sorted(self.rows.items()):
            # Ids and states hold what agents and plugins wrote: shown, never interpreted.
            table.add_row(
                plain(agent_id),
                plain(row.proposal_id),
                f"{row.critiques_written}/{row.critiques_received}",
                f"{row.checks_passed}/{row.checks_run}",
                str(row.rank) if row.rank else "",
                f"{row.score:.3f}" if row.score is not None else "",
                plain(row.state),
            )
        waiting = self.expected_agents - len(self.rows)
        if waiting > 0 and not self.done:
            table.caption = f"waiting for {waiting} more agent(s)"
        return Group(title, table)
