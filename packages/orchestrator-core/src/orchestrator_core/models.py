"""Domain objects of a deliberation: plain, typed and immutable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

KNOWN_ROLES: tuple[str, ...] = ("DEV", "QA", "ARCHITECT", "DEVOPS", "DATA")


class Phase(StrEnum):
    """The step of a deliberation an agent call belongs to."""

    GENERATE = "generate"
    CRITIQUE = "critique"
    REVISE = "revise"
    SELECT = "select"


class CheckKind(StrEnum):
    """The standard kinds of check; plugins may use other kinds by name."""

    POLICY = "policy"
    LINT = "lint"
    DRYRUN = "dryrun"


@dataclass(frozen=True)
class TaskTest:
    """A test file shipped with the task, run against proposals by dry-run checks."""

    path: str
    content: str


@dataclass(frozen=True)
class TaskConstraints:
    rubric: str = ""
    requirements: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    max_rounds: int = 0
    timeout_seconds: float = 0.0
    """Budget of the whole deliberation; 0 means the server's."""
    tests: tuple[TaskTest, ...] = ()
    agent_timeout_seconds: float = 0.0
    """Bound on each agent call; 0 means the server's (the tighter of the two applies)."""


@dataclass(frozen=True)
class Task:
    role: str
    description: str
    constraints: TaskConstraints = field(default_factory=TaskConstraints)


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class AgentReply:
    """What one agent call returns: its text and the tokens it cost."""

    text: str
    usage: TokenUsage = field(default_factory=TokenUsage)
    truncated: bool = False
    """The model stopped at its reply-length limit (``max_tokens``), so the text may end mid-way."""
    model: str = ""
    """The model that answered, as the model server named it (empty when it does not say)."""


class CallOutcome(StrEnum):
    """How one agent call ended."""

    OK = "ok"
    ERROR = "error"
    """The agent (its backend) reported an error: unreachable, rejected, an empty reply."""
    TIMEOUT = "timeout"
    BUG = "bug"
    """The backend's code failed in a way its contract does not allow."""
    CANCELLED = "cancelled"
    """The call was cut short: the deliberation was cancelled, timed out or lost its quorum."""


@dataclass(frozen=True)
class AgentCall:
    """One agent call as the record keeps it: who, in which phase, when (seconds since the
    Unix epoch), how it ended and what it cost. ``model`` is the model the agent was
    configured with (empty when its backend does not say)."""

    agent_id: str
    phase: Phase
    round: int
    started_at: float
    finished_at: float
    outcome: CallOutcome
    usage: TokenUsage = field(default_factory=TokenUsage)
    truncated: bool = False
    model: str = ""
    error: str = ""


IDENTITY_SOURCES: tuple[str, ...] = ("options", "settings")
"""Where an agent's model and endpoint came from: the council's options, or the backend's
own settings (``ORCH_<BACKEND>_*``) and defaults."""


@dataclass(frozen=True)
class AgentIdentity:
    """What an agent runs, as its backend reports it: the model, the endpoint (a URL, or a
    program for a command backend) and ``source``, "options" when the council's options named
    the model or the endpoint, "settings" when both came from the backend's settings. Empty
    strings mean the backend does not say."""

    model: str = ""
    endpoint: str = ""
    source: str = ""


@dataclass(frozen=True)
class AgentConfig:
    """How a backend should build one agent of a council."""

    agent_id: str
    role: str
    index: int
    council_size: int
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    proposal_id: str
    author_id: str
    role: str
    content: str
    revision: int = 0
    truncated: bool = False
    """The reply this content came from was cut off at the model's reply-length limit."""


@dataclass(frozen=True)
class Critique:
    critic_id: str
    proposal_id: str
    author_id: str
    content: str
    round: int


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check on one proposal."""

    name: str
    kind: str
    passed: bool
    score: float
    diagnostics: tuple[str, ...] = ()
    duration_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"check {self.name!r} returned score {self.score}, outside [0, 1]")


@dataclass(frozen=True)
class AgentFailure:
    agent_id: str
    phase: Phase
    error: str
    round: int = 0


@dataclass(frozen=True)
class RankedProposal:
    """One proposal's place in the ranking.

    ``viable`` says it passed every check that counts and at least one such check judged it
    (the definition is :meth:`orchestrator_core.scoring.Scorer.viable`); viable proposals
    rank above every non-viable one, whatever their scores.
    """

    proposal: Proposal
    checks: tuple[CheckResult, ...]
    score: float
    rank: int
    viable: bool = False


@dataclass(frozen=True)
class DeliberationOutcome:
    deliberation_id: str
    task: Task
    results: tuple[RankedProposal, ...]
    failures: tuple[AgentFailure, ...]
    usage: TokenUsage
    duration_seconds: float
    rounds: int

    @property
    def viable_proposals(self) -> int:
        """How many ranked proposals passed their checks (see :attr:`RankedProposal.viable`)."""
        return sum(1 for result in self.results if result.viable)


@dataclass(frozen=True)
class Selection:
    """The winner of an orchestration and why it won."""

    winner: RankedProposal
    candidates: tuple[RankedProposal, ...]
    rationale: str
    selected_by: str
    usage: TokenUsage = field(default_factory=TokenUsage)
    failure: AgentFailure | None = None
