"""Scraping a server's /metrics in tests, and the test doubles its councils are made of."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from orchestrator_core.models import AgentConfig, AgentIdentity
from orchestrator_core.testing import ScriptedAgent, ScriptedBackend

Samples = list[tuple[str, dict[str, str], float]]
"""Every sample of a scrape: its name (with any _total, _count, _bucket suffix), labels, value."""


async def scrape_text(port: int, headers: Mapping[str, str] | None = None) -> str:
    """GET /metrics on 127.0.0.1:``port`` (off the loop: the test's server shares it)."""

    def get() -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=dict(headers or {}))
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            body: bytes = response.read()
            return body.decode("utf-8")

    return await asyncio.to_thread(get)


def parse(text: str) -> Samples:
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value for sample, found, value in samples
        if sample == name and all(found.get(key) == wanted for key, wanted in labels.items())
    )


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {found[label] for sample, found, _ in samples if sample == name and label in found}


@dataclass
class ModelAgent(ScriptedAgent):
    """A scripted agent that says which model and endpoint it was configured with."""

    model: str = ""
    endpoint: str = ""

    def describe(self) -> AgentIdentity:
        return AgentIdentity(model=self.model, endpoint=self.endpoint, source="options")


@dataclass
class ModelBackend(ScriptedBackend):
    """Builds :class:`ModelAgent` s; accepts the options a remote backend takes (model,
    base_url, api_key), as a council configures them."""

    agents_made: list[ModelAgent] = field(default_factory=list)

    def create(self, config: AgentConfig) -> ModelAgent:
        unknown = set(config.options) - {"model", "base_url", "api_key"}
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}")
        options = {**self.defaults, **self.agents.get(config.index, {})}
        agent = ModelAgent(
            agent_id=config.agent_id, model=str(config.options.get("model", "")),
            endpoint=str(config.options.get("base_url", "")), **options,  # type: ignore[arg-type]
        )
        self.agents_made.append(agent)
        return agent
