"""Test doubles and helpers of the tracing tests: agents that name their model, and spans
captured with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from orchestrator_core.models import AgentConfig, AgentIdentity, AgentReply, Phase, TokenUsage
from orchestrator_core.testing import ScriptedAgent

CONFIGURED_MODEL = "council-model"
ANSWERING_MODEL = "council-model-2026-01"
TASK_TEXT = "Write a function that reverses a linked list in place"


def usage_of(index: int) -> TokenUsage:
    """Each agent of a council reports its own token counts, so sums prove each is counted."""
    return TokenUsage(prompt_tokens=100 + index, completion_tokens=20 + index)


@dataclass
class ModelAgent(ScriptedAgent):
    """A scripted agent configured with a model whose replies name the model that answered."""

    model: str = CONFIGURED_MODEL
    answered_by: str = ANSWERING_MODEL

    def describe(self) -> AgentIdentity:
        return AgentIdentity(model=self.model, endpoint="scripted://", source="options")

    async def _reply(self, phase: Phase, script: Any, default: str, *args: object) -> AgentReply:
        reply = await super()._reply(phase, script, default, *args)
        return replace(reply, model=self.answered_by)


@dataclass
class ModelBackend:
    """Builds :class:`ModelAgent` s, each with usage of its own (``defaults`` for every agent,
    ``agents`` per index)."""

    name: str = "openai"
    agents: dict[int, dict[str, Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    created: list[ModelAgent] = field(default_factory=list)

    def create(self, config: AgentConfig) -> ModelAgent:
        options: dict[str, Any] = {
            "usage": usage_of(config.index), **self.defaults, **self.agents.get(config.index, {})
        }
        agent = ModelAgent(agent_id=config.agent_id, **options)
        self.created.append(agent)
        return agent


def by_id(spans: Sequence[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in spans}


def parent_of(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return by_id(spans).get(span.parent.span_id)


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def agent_calls(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if (span.attributes or {}).get("gen_ai.operation.name") == "chat"]


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, f"{len(found)} spans named {name!r}: {[s.name for s in spans]}"
    return found[0]


def attributes_text(spans: Sequence[ReadableSpan]) -> str:
    """Every attribute value of every span (and its events), as one string to search."""
    values: list[str] = []
    for span in spans:
        values.extend(str(value) for value in (span.attributes or {}).values())
        for event in span.events:
            values.extend(str(value) for value in (event.attributes or {}).values())
    return "\n".join(values)
