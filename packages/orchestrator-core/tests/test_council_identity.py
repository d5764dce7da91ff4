"""Records say what ran: each council seat's model, endpoint (credentials redacted) and source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator_core.breaker import CircuitBreaker, GuardedAgent
from orchestrator_core.hookspecs import DescribedAgent, identity_of
from orchestrator_core.models import AgentConfig, AgentIdentity, Task
from orchestrator_core.orchestrator import DeliberationRequest
from orchestrator_core.records.sql import encode_record
from orchestrator_core.testing import ScriptedAgent, ScriptedBackend, ScriptedCheck

SECRET = "s3cr3t-key"
ENDPOINT = f"https://user:{SECRET}@llm.example:8443/v1?api_key={SECRET}"


@dataclass
class DescribingAgent(ScriptedAgent):
    identity: AgentIdentity = field(default_factory=AgentIdentity)
    broken: bool = False

    def describe(self) -> AgentIdentity:
        if self.broken:
            raise RuntimeError("describe is broken")
        return self.identity


@dataclass
class DescribingBackend(ScriptedBackend):
    broken_at: int = -1

    def create(self, config: AgentConfig) -> DescribingAgent:
        source = "options" if "model" in config.options else "settings"
        agent = DescribingAgent(
            agent_id=config.agent_id,
            identity=AgentIdentity(str(config.options.get("model", "m-default")), ENDPOINT, source),
            broken=config.index == self.broken_at,
        )
        self.created.append(agent)
        return agent


def test_a_guarded_agent_forwards_describe() -> None:
    inner = DescribingAgent(agent_id="dev-1", identity=AgentIdentity("m", "http://h/v1", "settings"))
    guarded = GuardedAgent(inner, CircuitBreaker("http://h/v1"))
    assert isinstance(guarded, DescribedAgent)
    assert identity_of(guarded) == AgentIdentity("m", "http://h/v1", "settings")


def test_agents_that_do_not_describe_themselves_give_an_empty_identity() -> None:
    assert identity_of(GuardedAgent(ScriptedAgent("dev-1"), CircuitBreaker("e"))) == AgentIdentity()
    odd = DescribingAgent(agent_id="dev-1", identity=AgentIdentity("m", "e", "somewhere"))
    assert identity_of(odd).source == ""  # only "options" or "settings" are recorded


async def test_the_record_holds_each_seats_model_endpoint_and_source(make_orchestrator: Any) -> None:
    from orchestrator_core.settings import CouncilSettings

    orchestrator = await make_orchestrator(
        DescribingBackend(broken_at=2),
        ScriptedCheck(),
        councils={"DEV": CouncilSettings(backend="scripted", agents=3, agent_options=[{"model": "m-named"}])},
    )
    outcome = await orchestrator.deliberate(DeliberationRequest(Task(role="DEV", description="x"), rounds=0))
    record = await orchestrator.get_record(outcome.deliberation_id)
    seats = [(s.agent_id, s.model, s.endpoint, s.source) for s in record.council]
    redacted = "https://llm.example:8443/v1?api_key=***"
    assert seats == [
        ("dev-1", "m-named", redacted, "options"),
        ("dev-2", "m-default", redacted, "settings"),
        ("dev-3", "", "", ""),  # its describe() raised: the record says nothing, the run goes on
    ]
    assert SECRET not in encode_record(record)
