"""A circuit breaker per agent backend endpoint.

After ``failure_threshold`` consecutive failures that say the endpoint is down (unreachable,
or a call timed out), calls fail fast for ``cooldown_seconds`` instead of hammering a dead
model server. Then the circuit is half-open: up to ``trial_calls`` calls go through as
trials, and their results close or reopen it. ``trial_calls`` is the council quorum (see
:class:`~orchestrator_core.council.Breakers`): a council's phase starts all its calls at
once, and a single trial would leave every other agent of a recovered endpoint refused,
below the quorum. Refusals of the configuration (bad credentials, unknown model) do not
count: the endpoint answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from orchestrator_core.errors import BackendUnavailable
from orchestrator_core.hookspecs import Agent, identity_of
from orchestrator_core.models import AgentIdentity, AgentReply, Critique, Proposal, Task

T = TypeVar("T")

COOLDOWN_SETTING = "ORCH_BREAKER_COOLDOWN_SECONDS"
MAX_CAUSE_CHARS = 500
"""The last failure's message, as an open circuit repeats it, is cut to this length."""


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitOpen(BackendUnavailable):
    """The breaker refused the call without trying the endpoint."""


@dataclass
class CircuitBreaker:
    endpoint: str
    """The endpoint's label, credentials already redacted."""
    failure_threshold: int = 5
    cooldown_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    trial_calls: int = 1
    """How many calls a half-open circuit lets through at once."""
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    last_failure: str = ""
    """The message of the last failure that counted (it names the setting to check)."""
    _trials_in_flight: int = 0
    _abandoned_trials: int = 0

    def current_state(self) -> CircuitState:
        if self.state is CircuitState.OPEN and self.clock() - self.opened_at >= self.cooldown_seconds:
            return CircuitState.HALF_OPEN
        return self.state

    def before_call(self) -> None:
        state = self.current_state()
        if state is CircuitState.OPEN:
            raise CircuitOpen(self._open_message())
        if state is CircuitState.HALF_OPEN:
            if self._trials_in_flight >= max(1, self.trial_calls):
                raise CircuitOpen(self._trying_message())
            self.state = CircuitState.HALF_OPEN
            self._trials_in_flight += 1

    def record_success(self) -> None:
        self.state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self._trials_in_flight = 0
        self._abandoned_trials = 0

    def record_failure(self, error: BaseException | None = None) -> None:
        self.consecutive_failures += 1
        if error is not None and not isinstance(error, CircuitOpen):
            self.last_failure = _cut(str(error) or type(error).__name__)
        trial_failed = self._trials_in_flight > 0
        self._trials_in_flight = max(0, self._trials_in_flight - 1)
        if trial_failed or self.consecutive_failures >= self.failure_threshold:
            self.state = CircuitState.OPEN
            self.opened_at = self.clock()

    def record_abandoned(self) -> None:
        """A call was cancelled before it told us anything about the endpoint."""
        if self._trials_in_flight > 0:
            self._trials_in_flight -= 1
            self._abandoned_trials += 1

    def record_timeout(self) -> None:
        """The caller's timeout cancelled a call: the endpoint did not answer in time."""
        if self._abandoned_trials > 0:
            self._abandoned_trials -= 1
            self._trials_in_flight += 1
        self.record_failure()

    async def call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run one call through the breaker. Timeouts are the caller's: it reports them
        with :meth:`record_timeout`, since here they look like any other cancellation."""
        self.before_call()
        try:
            result = await work()
        except BackendUnavailable as exc:
            self.record_failure(exc)
            raise
        except asyncio.CancelledError:
            self.record_abandoned()
            raise
        except BaseException:
            self.record_success()  # the endpoint answered, even if the answer was bad
            raise
        self.record_success()
        return result

    def _open_message(self) -> str:
        remaining = max(0.0, self.cooldown_seconds - (self.clock() - self.opened_at))
        return (
            f"the circuit for {self.endpoint} is open after {self.consecutive_failures} consecutive "
            f"failures{self._cause()}; calls fail fast for another {remaining:.0f}s (cool-down: "
            f"{COOLDOWN_SETTING}); check that the endpoint is up and the backend's base URL setting "
            "names it"
        )

    def _trying_message(self) -> str:
        return (
            f"the circuit for {self.endpoint} is half-open after {self.consecutive_failures} "
            f"consecutive failures{self._cause()}: {self._trials_in_flight} trial call(s) are testing "
            f"whether it recovered, and further calls fail fast until one answers (cool-down: "
            f"{COOLDOWN_SETTING})"
        )

    def _cause(self) -> str:
        return f" (the last: {self.last_failure})" if self.last_failure else ""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CAUSE_CHARS else text[: MAX_CAUSE_CHARS - 1] + "…"


class GuardedAgent:
    """An agent whose calls pass through its endpoint's circuit breaker."""

    def __init__(self, agent: Agent, breaker: CircuitBreaker, backend: str = "") -> None:
        self.agent = agent
        self.agent_id = agent.agent_id
        self.breaker = breaker
        self.backend = backend
        """The name of the backend that made the agent, for errors and failure counts."""

    def on_timeout(self) -> None:
        """Told by the engine when its timeout ended one of this agent's calls."""
        self.breaker.record_timeout()

    def describe(self) -> AgentIdentity:
        """The wrapped agent's identity (empty when its backend does not say)."""
        return identity_of(self.agent)

    async def generate(self, task: Task) -> AgentReply:
        return await self.breaker.call(lambda: self.agent.generate(task))

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        return await self.breaker.call(lambda: self.agent.critique(task, proposal))

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        return await self.breaker.call(lambda: self.agent.revise(task, proposal, feedback))

    async def select(self, task: Task, candidates: Sequence[Proposal]) -> AgentReply:
        select = getattr(self.agent, "select", None)
        if select is None:
            raise TypeError(f"{self.agent_id} cannot select a winner")
        return await self.breaker.call(lambda: select(task, candidates))
