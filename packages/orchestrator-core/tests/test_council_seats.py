"""A council's seats (options, breaker, options as recorded) are worked out once per settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from orchestrator_core.council import Breakers, Council
from orchestrator_core.models import AgentConfig, Task, TokenUsage
from orchestrator_core.records.model import DeliberationRecord, PhaseTiming, RecordStatus
from orchestrator_core.settings import CouncilSettings
from orchestrator_core.testing import ScriptedAgent


@dataclass
class MeddlingBackend:
    """A backend that changes the options it is given (allowed: they are the agent's own)."""

    name: str = "plain"
    seen: list[dict[str, Any]] = field(default_factory=list)

    def create(self, config: AgentConfig) -> ScriptedAgent:
        self.seen.append(dict(config.options))
        config.options["model"] = "changed by the backend"  # type: ignore[index]
        return ScriptedAgent(agent_id=config.agent_id)


def council(settings: CouncilSettings, backend: Any = None) -> Council:
    return Council("DEV", settings, backend or MeddlingBackend(), breakers=Breakers(5, 30.0))


def test_a_seat_is_worked_out_once_and_again_for_new_settings() -> None:
    settings = CouncilSettings(
        backend="plain",
        agents=2,
        options={"base_url": "https://a.example/v1", "api_key": SecretStr("k")},
        agent_options=[{}, {"base_url": "https://b.example/v1"}],
    )
    dev = council(settings)
    first = dev.seat(0)
    assert dev.seat(0) is first
    assert first.options == settings.options_for(0)
    assert first.recorded_options == {"base_url": '"https://a.example/v1"', "api_key": '"***"'}
    assert dev.seat(1).breaker is not first.breaker  # another endpoint, another breaker
    assert dev.agents(2)[0].breaker is first.breaker

    dev.settings = CouncilSettings(backend="plain", agents=2, options={"base_url": "https://c.example/v1"})
    renewed = dev.seat(0)
    assert renewed is not first
    assert renewed.recorded_options == {"base_url": '"https://c.example/v1"'}
    assert dev.agents(1)[0].breaker is renewed.breaker


def test_each_agent_gets_options_of_its_own() -> None:
    backend = MeddlingBackend()
    dev = council(CouncilSettings(backend="plain", agents=1, options={"model": "m"}), backend)
    dev.agents(1)
    dev.agents(1)
    assert backend.seen == [{"model": "m"}, {"model": "m"}]
    assert dev.seat(0).options == {"model": "m"}


def test_finishing_takes_other_changes_in_the_same_copy() -> None:
    record = DeliberationRecord(
        "d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, 10.0, usage=TokenUsage(5, 5)
    )
    phases = (PhaseTiming("generate", 0, 10.0, 11.0),)
    finished = record.finished(
        RecordStatus.SUCCEEDED, 20.0, owner="o2", usage=TokenUsage(6, 6), phases=phases, updated_at=15.0
    )
    assert (finished.usage, finished.phases, finished.owner) == (TokenUsage(6, 6), phases, "o2")
    assert (finished.updated_at, finished.finished_at, finished.status) == (20.0, 20.0, RecordStatus.SUCCEEDED)
    given = record.finished(RecordStatus.FAILED, 20.0, usage=TokenUsage(1, 1))
    assert (given.usage, given.phases) == (TokenUsage(1, 1), ())
