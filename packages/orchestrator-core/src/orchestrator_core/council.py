"""Councils: for each role, the agents a deliberation gets, built from settings and backends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator_core.breaker import CircuitBreaker, CircuitState, GuardedAgent
from orchestrator_core.errors import NoCouncil
from orchestrator_core.hookspecs import Agent, AgentBackend, SelectingAgent
from orchestrator_core.models import AgentConfig
from orchestrator_core.reachability import EndpointState, Reachability, probe_backend
from orchestrator_core.records.redaction import redacted_options
from orchestrator_core.redaction import redact_url
from orchestrator_core.settings import CONFIG_FILE_ENV, CouncilSettings, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CouncilInfo:
    role: str
    backend: str
    agents: int
    ready: bool
    detail: str
    circuit: CircuitState = CircuitState.CLOSED
    endpoint: Reachability = field(default_factory=Reachability)
    """Whether the council's endpoint answered its last probe (unknown until probed)."""


@dataclass(frozen=True)
class Seat:
    """What the agent at one position of a council gets in every deliberation: its options,
    its endpoint's circuit breaker, and its options as a record keeps them (secrets redacted).
    Worked out once per council settings instead of for every deliberation."""

    options: Mapping[str, Any]
    breaker: CircuitBreaker
    recorded_options: Mapping[str, str]


class Breakers:
    """One circuit breaker per backend endpoint, shared by every council that uses it.

    A half-open breaker lets ``trial_calls`` calls through at once: the quorum, so a council
    on a recovered endpoint keeps enough agents to go on (its phases start every call at once).
    """

    def __init__(
        self,
        failure_threshold: int,
        cooldown_seconds: float,
        trial_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self.trial_calls = trial_calls
        self.clock = clock
        self._by_endpoint: dict[tuple[str, str], CircuitBreaker] = {}

    def for_options(self, backend: str, options: Mapping[str, object]) -> CircuitBreaker:
        endpoint = str(options.get("base_url") or options.get("program") or "")
        key = (backend, endpoint)
        if key not in self._by_endpoint:
            label = redact_url(endpoint) if endpoint else f"the {backend} backend's default endpoint"
            self._by_endpoint[key] = CircuitBreaker(
                label, self.failure_threshold, self.cooldown_seconds, self.clock, self.trial_calls
            )
        return self._by_endpoint[key]

    def endpoints(self) -> list[tuple[str, str, CircuitBreaker]]:
        """Every breaker made so far, as (backend, endpoint as configured, breaker).

        A copy, so another thread (metrics read when scraped) may call it while the loop adds
        a breaker. The endpoint is the configured one and may hold credentials: redact it
        before showing it."""
        return [(backend, endpoint, breaker) for (backend, endpoint), breaker in list(self._by_endpoint.items())]


class Council:
    """One role's council. Agents are made per deliberation: they are cheap, backends are shared."""

    def __init__(
        self,
        role: str,
        settings: CouncilSettings,
        backend: AgentBackend | None,
        problem: str = "",
        *,
        breakers: Breakers | None = None,
    ) -> None:
        self.role = role
        self.settings = settings
        self._backend = backend
        self.problem = problem
        self._breakers = breakers or Breakers(failure_threshold=5, cooldown_seconds=30.0)
        self.reachability = Reachability()
        """What the last probe of the council's endpoint found (see :mod:`.reachability`)."""
        self._seats: dict[int, Seat] = {}
        self._seats_of = settings
        """The settings the seats were worked out from: new settings, new seats."""

    @property
    def ready(self) -> bool:
        return self._backend is not None and not self.problem

    @property
    def breakers(self) -> Breakers:
        """The circuit breakers of its endpoints (shared with every council on the same ones)."""
        return self._breakers

    @property
    def size(self) -> int:
        return self.settings.agents

    def agents(self, count: int) -> list[GuardedAgent]:
        """``count`` agents, each behind its endpoint's circuit breaker."""
        return [self._agent(index, count) for index in range(count)]

    def selector(self) -> GuardedAgent | None:
        """The council's first agent, when it can choose a winner among candidates."""
        agent = self._agent(0, 1)
        return agent if isinstance(agent.agent, SelectingAgent) else None

    def seat(self, index: int) -> Seat:
        """The seat at ``index`` (from 0), as the current settings make it."""
        if self._seats_of is not self.settings:
            self._seats, self._seats_of = {}, self.settings
        seat = self._seats.get(index)
        if seat is None:
            options = self.settings.options_for(index)
            seat = Seat(options, self._breakers.for_options(self.settings.backend, options), redacted_options(options))
            self._seats[index] = seat
        return seat

    def _agent(self, index: int, count: int) -> GuardedAgent:
        if self._backend is None or self.problem:
            raise NoCouncil(self.problem)
        seat = self.seat(index)
        agent: Agent = self._backend.create(
            AgentConfig(
                agent_id=f"{self.role.lower()}-{index + 1}",
                role=self.role,
                index=index,
                council_size=count,
                options=dict(seat.options),  # the agent's own: a backend may change what it is given
            )
        )
        return GuardedAgent(agent, seat.breaker)

    @property
    def circuit(self) -> CircuitState:
        """The worst state among the breakers of this council's endpoints."""
        states = {self.seat(i).breaker.current_state() for i in range(self.size)}
        for state in (CircuitState.OPEN, CircuitState.HALF_OPEN):
            if state in states:
                return state
        return CircuitState.CLOSED

    async def probe(self) -> Reachability:
        """Probe each distinct endpoint of the council's agents through the backend (no agent
        is created for it); the worst state wins."""
        if not self.ready:
            return Reachability()
        seen: set[int] = set()
        found: list[Reachability] = []
        for index in range(self.size):
            breaker = self._breakers.for_options(self.settings.backend, self.settings.options_for(index))
            if id(breaker) in seen:
                continue
            seen.add(id(breaker))
            found.append(await probe_backend(self._backend, self.settings.options_for(index)))
        for state in (EndpointState.UNREACHABLE, EndpointState.UNKNOWN, EndpointState.REACHABLE):
            for reachability in found:
                if reachability.state is state:
                    return reachability
        return Reachability()

    def info(self) -> CouncilInfo:
        detail = self.problem or f"{self.size} {self.settings.backend} agent(s)"
        circuit = self.circuit if self.ready else CircuitState.CLOSED
        if circuit is CircuitState.OPEN:
            detail += "; its endpoint's circuit is open after repeated failures"
        if self.ready and self.reachability.state is EndpointState.UNREACHABLE:
            detail += f"; its endpoint is unreachable: {self.reachability.detail}"
        return CouncilInfo(self.role, self.settings.backend, self.size, self.ready, detail, circuit, self.reachability)


def build_councils(
    settings: Settings, backends: Mapping[str, AgentBackend], *, breakers: Breakers | None = None
) -> dict[str, Council]:
    """A council per configured role; one that cannot run says why instead of failing startup.

    Each council's agents are created once here to validate its options: ``ValueError`` or
    ``TypeError`` from the backend's ``create`` means the options do not suit it; anything
    else is a plugin bug, logged with its traceback. Either way the council is not ready and
    its detail names the backend and the error."""
    councils: dict[str, Council] = {}
    if breakers is None:
        breakers = Breakers(
            settings.breaker_failure_threshold, settings.breaker_cooldown_seconds, trial_calls=settings.quorum
        )
    for role, council_settings in settings.councils.items():
        backend = backends.get(council_settings.backend)
        problem = ""
        if backend is None:
            installed = ", ".join(sorted(backends)) or "none"
            problem = (
                f"the {role} council uses backend {council_settings.backend!r}, which no installed "
                f"plugin registers (installed backends: {installed}); install the plugin that "
                f"provides it (agents-contrib provides embedded, openai, anthropic and command) or set "
                f"ORCH_COUNCILS__{role}__BACKEND"
            )
        if not problem and council_settings.agents > settings.max_agents:
            problem = (
                f"the {role} council has {council_settings.agents} agents "
                f"(ORCH_COUNCILS__{role}__AGENTS), more than ORCH_MAX_AGENTS allows "
                f"({settings.max_agents}); lower one or raise the other"
            )
        council = Council(
            role,
            council_settings,
            backend,
            problem,
            breakers=breakers,
        )
        if backend is not None and not problem:
            try:
                council.agents(council.size)
            except (ValueError, TypeError) as exc:
                council.problem = (
                    f"the {role} council's options do not suit backend {council_settings.backend!r}: {exc}"
                )
            except Exception as exc:  # a plugin bug: the council is not ready, the service starts
                log.error(
                    "backend %r failed to create the %s council's agents",
                    council_settings.backend,
                    role,
                    exc_info=True,
                )
                council.problem = (
                    f"the {role} council's backend {council_settings.backend!r} failed to create an "
                    f"agent: {type(exc).__name__}: {exc}"
                )
        councils[role] = council
    return councils


def no_council_message(role: str, councils: Mapping[str, Council]) -> str:
    configured = ", ".join(sorted(councils)) or "none"
    return (
        f"no council is configured for role {role!r} (configured roles: {configured}); add one "
        f"with ORCH_COUNCILS__{role}__BACKEND=<backend> or a [councils.{role}] table in the "
        f"TOML file named by {CONFIG_FILE_ENV}"
    )
