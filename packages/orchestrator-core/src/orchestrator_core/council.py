"""Councils: for each role, the agents a deliberation gets, built from settings and backends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator_core.errors import NoCouncil
from orchestrator_core.hookspecs import Agent, AgentBackend
from orchestrator_core.models import AgentConfig
from orchestrator_core.settings import CONFIG_FILE_ENV, CouncilSettings, Settings


@dataclass(frozen=True)
class CouncilInfo:
    role: str
    backend: str
    agents: int
    ready: bool
    detail: str


class Council:
    """One role's council. Agents are made per deliberation: they are cheap, backends are shared."""

    def __init__(
        self, role: str, settings: CouncilSettings, backend: AgentBackend | None, problem: str = ""
    ) -> None:
        self.role = role
        self.settings = settings
        self._backend = backend
        self.problem = problem

    @property
    def ready(self) -> bool:
        return self._backend is not None and not self.problem

    @property
    def size(self) -> int:
        return self.settings.agents

    def agents(self, count: int) -> list[Agent]:
        if self._backend is None or self.problem:
            raise NoCouncil(self.problem)
        backend = self._backend
        return [
            backend.create(
                AgentConfig(
                    agent_id=f"{self.role.lower()}-{index + 1}",
                    role=self.role,
                    index=index,
                    council_size=count,
                    options=self.settings.options_for(index),
                )
            )
            for index in range(count)
        ]

    def info(self) -> CouncilInfo:
        detail = self.problem or f"{self.size} {self.settings.backend} agent(s)"
        return CouncilInfo(self.role, self.settings.backend, self.size, self.ready, detail)


def build_councils(settings: Settings, backends: Mapping[str, AgentBackend]) -> dict[str, Council]:
    """A council per configured role; one that cannot run says why instead of failing startup."""
    councils: dict[str, Council] = {}
    for role, council_settings in settings.councils.items():
        backend = backends.get(council_settings.backend)
        problem = ""
        if backend is None:
            installed = ", ".join(sorted(backends)) or "none"
            problem = (
                f"the {role} council uses backend {council_settings.backend!r}, which no installed "
                f"plugin registers (installed backends: {installed}); install the plugin that "
                f"provides it (agents-contrib provides openai, anthropic and command) or set "
                f"ORCH_COUNCILS__{role}__BACKEND"
            )
        council = Council(role, council_settings, backend, problem)
        if backend is not None:
            try:
                council.agents(council.size)
            except (ValueError, TypeError) as exc:
                council.problem = (
                    f"the {role} council's options do not suit backend "
                    f"{council_settings.backend!r}: {exc}"
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
