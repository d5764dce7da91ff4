"""Endpoint probes: councils say whether their endpoint answers, before a deliberation finds out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from core_support import until

from orchestrator_core.council import build_councils
from orchestrator_core.models import AgentConfig
from orchestrator_core.reachability import EndpointState, Prober, Reachability, probe_backend
from orchestrator_core.settings import Settings
from orchestrator_core.testing import ScriptedAgent


class ProbedAgent(ScriptedAgent):
    """A scripted agent whose endpoint answers, or not, as its options say."""

    def __init__(self, config: AgentConfig) -> None:
        super().__init__(config.agent_id)
        self.endpoint = str(config.options.get("base_url", ""))

    async def answer(self) -> Reachability:
        if self.endpoint.startswith("dead"):
            return Reachability(EndpointState.UNREACHABLE, f"{self.endpoint} refused the connection")
        if self.endpoint == "hang":
            await asyncio.sleep(3600)
        if self.endpoint == "broken":
            raise KeyError("a plugin's bug")
        return Reachability(EndpointState.REACHABLE, f"{self.endpoint} answered")


class ProbedBackend:
    name = "probed"

    def __init__(self) -> None:
        self.created: list[ProbedAgent] = []

    def create(self, config: AgentConfig) -> ProbedAgent:
        agent = ProbedAgent(config)
        self.created.append(agent)
        return agent

    async def probe_endpoint(self, options: Mapping[str, Any]) -> Reachability:
        return await ProbedAgent(AgentConfig("probe", "PROBE", 0, 1, options)).answer()


def councils(options: Mapping[str, Any], agent_options: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    settings = Settings(councils={"DEV": {"backend": "probed", "agents": 3, "options": dict(options),
                                          "agent_options": agent_options or []}},
                        default_backend="probed")
    return build_councils(settings, {"probed": ProbedBackend()})  # type: ignore[dict-item]


async def test_a_council_is_unknown_until_probed_then_says_what_it_found() -> None:
    dev = councils({"base_url": "http://a"})["DEV"]
    assert dev.info().endpoint.state is EndpointState.UNKNOWN

    prober = Prober(lambda: [dev], interval_seconds=60)
    await prober.probe_all()
    assert dev.info().endpoint == Reachability(EndpointState.REACHABLE, "http://a answered")


async def test_one_dead_endpoint_among_the_agents_makes_the_council_unreachable() -> None:
    dev = councils({"base_url": "http://a"}, agent_options=[{}, {"base_url": "dead://b"}])["DEV"]
    found = await dev.probe()
    assert found.state is EndpointState.UNREACHABLE
    assert "dead://b refused the connection" in found.detail


async def test_an_unreachable_endpoint_shows_in_the_council_detail_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dev = councils({"base_url": "dead://x"})["DEV"]
    prober = Prober(lambda: [dev], interval_seconds=60)
    with caplog.at_level(logging.INFO, logger="orchestrator_core.reachability"):
        await prober.probe_all()
        await prober.probe_all()
    assert "its endpoint is unreachable: dead://x refused the connection" in dev.info().detail
    assert dev.info().ready  # reachability informs; it does not take the council down
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1


async def test_a_hanging_probe_is_cut_off_and_a_broken_one_is_unknown() -> None:
    backend = ProbedBackend()
    assert (await probe_backend(backend, {"base_url": "hang"}, timeout_seconds=0.05)).state is EndpointState.UNREACHABLE
    found = await probe_backend(backend, {"base_url": "broken"})
    assert found.state is EndpointState.UNKNOWN
    assert "KeyError" in found.detail


async def test_a_backend_without_a_probe_is_unknown_and_probing_creates_no_agent() -> None:
    class Silent(ProbedBackend):
        probe_endpoint = None  # type: ignore[assignment]

    backend = Silent()
    assert await probe_backend(backend, {}) == Reachability()
    settings = Settings(councils={"DEV": {"backend": "probed", "agents": 3}}, default_backend="probed")
    dev = build_councils(settings, {"probed": ProbedBackend()})["DEV"]  # type: ignore[dict-item]
    created = len(dev._backend.created)  # type: ignore[union-attr]
    await dev.probe()
    assert len(dev._backend.created) == created  # type: ignore[union-attr]


async def test_the_prober_runs_in_the_background_and_stops() -> None:
    dev = councils({"base_url": "http://a"})["DEV"]
    prober = Prober(lambda: [dev], interval_seconds=0.01)
    prober.start()
    await until(lambda: dev.reachability.state is EndpointState.REACHABLE, "the prober found the endpoint")
    await prober.stop()
    assert dev.reachability.state is EndpointState.REACHABLE


async def test_a_zero_interval_never_probes() -> None:
    dev = councils({"base_url": "http://a"})["DEV"]
    prober = Prober(lambda: [dev], interval_seconds=0)
    prober.start()
    await asyncio.sleep(0.02)
    await prober.stop()
    assert dev.reachability.state is EndpointState.UNKNOWN
