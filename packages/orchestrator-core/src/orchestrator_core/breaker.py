"""A circuit breaker per agent backend endpoint.

After ``failure_threshold`` consecutive failures that say the endpoint is down (unreachable,
or a call timed out), calls fail fast for ``cooldown_seconds`` instead of hammering a dead
model server; then one trial call is let through (half-open), and its result closes or
reopens the circuit. Refusals of the configuration (bad credentials, unknown model) do not
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
from orchestrator_core.hookspecs import Agent
from orchestrator_core.models import AgentReply, Critique, Proposal, Task

T = TypeVar("T")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitOpen(BackendUnavailable):
    """The breaker refused the call without trying the endpoint."""


@dataclass
class CircuitBreaker:
    endpoint: str
    failure_threshold: int = 5
    cooldown_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    _trial_in_flight: bool = False
    _abandoned_trial: bool = False

    def current_state(self) -> CircuitState:
        if self.state is CircuitState.OPEN and self.clock() - self.opened_at >= self.cooldown_seconds:
            return CircuitState.HALF_OPEN
        return self.state

    def before_call(self) -> None:
        state = self.current_state()
        if state is CircuitState.OPEN or (state is CircuitState.HALF_OPEN and self._trial_in_flight):
            remaining = max(0.0, self.cooldown_seconds - (self.clock() - self.opened_at))
            raise CircuitOpen(
                f"the circuit for {self.endpoint} is open after {self.consecutive_failures} consecutive "
                f"failures; calls fail fast for another {remaining:.0f}s"
            )
        if state is CircuitState.HALF_OPEN:
            self.state = CircuitState.HALF_OPEN
            self._trial_in_flight = True

    def record_success(self) -> None:
        self.state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        trial_failed = self._trial_in_flight
        self._trial_in_flight = False
        if trial_failed or self.consecutive_failures >= self.failure_threshold:
            self.state = CircuitState.OPEN
            self.opened_at = self.clock()

    def record_abandoned(self) -> None:
        """A call was cancelled before it told us anything about the endpoint."""
        self._abandoned_trial = self._abandoned_trial or self._trial_in_flight
        self._trial_in_flight = False

    def record_timeout(self) -> None:
        """The caller's timeout cancelled a call: the endpoint did not answer in time."""
        self._trial_in_flight = self._abandoned_trial
        self._abandoned_trial = False
        self.record_failure()

    async def call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run one call through the breaker. Timeouts are the caller's: it reports them
        with :meth:`record_timeout`, since here they look like any other cancellation."""
        self.before_call()
        try:
            result = await work()
        except BackendUnavailable:
            self.record_failure()
            raise
        except asyncio.CancelledError:
            self.record_abandoned()
            raise
        except BaseException:
            self.record_success()  # the endpoint answered, even if the answer was bad
            raise
        self.record_success()
        return result


class GuardedAgent:
    """An agent whose calls pass through its endpoint's circuit breaker."""

    def __init__(self, agent: Agent, breaker: CircuitBreaker) -> None:
        self.agent = agent
        self.agent_id = agent.agent_id
        self.breaker = breaker

    def on_timeout(self) -> None:
        """Told by the engine when its timeout ended one of this agent's calls."""
        self.breaker.record_timeout()

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
