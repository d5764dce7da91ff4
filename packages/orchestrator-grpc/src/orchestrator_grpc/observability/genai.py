"""An agent call's span attributes under the OpenTelemetry GenAI semantic conventions.

An agent call is an inference span (``gen_ai.operation.name`` "chat", kind CLIENT, named
``chat {gen_ai.request.model}``): the provider (``gen_ai.provider.name``, and the older
``gen_ai.system`` beside it for the tools that still read it), the model configured and
the one that answered, the tokens the server counted, why it stopped, and the agent's id.
The task's text and the reply are opt-in (``ORCH_TRACE_CONTENT``); then they are the
convention's ``gen_ai.input.messages`` and ``gen_ai.output.messages``, as JSON (the core
knows the task, not the prompt a backend renders from it).
"""

from __future__ import annotations

import json

from orchestrator_core.models import CallOutcome
from orchestrator_core.telemetry import AgentCallScope

OPERATION = "chat"
PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "embedded": "llama.cpp",
}
"""Backend name -> ``gen_ai.provider.name``: an OpenAI-compatible server speaks OpenAI's API;
the embedded backend is llama.cpp in process. Other backends are named as themselves."""

AttributeValue = str | bool | int | float | list[str]


def provider_of(backend: str) -> str:
    return PROVIDERS.get(backend, backend or "unknown")


def span_name(scope: AgentCallScope) -> str:
    return f"{OPERATION} {scope.model}" if scope.model else OPERATION


def request_attributes(scope: AgentCallScope, *, trace_content: bool) -> dict[str, AttributeValue]:
    """What is known as the call starts."""
    provider = provider_of(scope.backend)
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        "gen_ai.agent.id": scope.agent_id,
        "orchestrator.deliberation.id": scope.deliberation_id,
        "orchestrator.role": scope.role,
        "orchestrator.phase": scope.phase.value,
        "orchestrator.round": scope.round,
        "orchestrator.backend": scope.backend,
    }
    if scope.model:
        attributes["gen_ai.request.model"] = scope.model
    if trace_content and scope.task:
        attributes["gen_ai.input.messages"] = _messages("user", scope.task)
    return attributes


def response_attributes(scope: AgentCallScope, *, trace_content: bool) -> dict[str, AttributeValue]:
    """What is known once the call has ended (``scope`` filled in)."""
    attributes: dict[str, AttributeValue] = {
        "gen_ai.usage.input_tokens": scope.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": scope.usage.completion_tokens,
        "orchestrator.outcome": scope.outcome.value,
    }
    if scope.response_model:
        attributes["gen_ai.response.model"] = scope.response_model
    if scope.outcome is CallOutcome.OK:
        attributes["gen_ai.response.finish_reasons"] = [finish_reason(scope)]
        if trace_content and scope.reply:
            attributes["gen_ai.output.messages"] = _messages("assistant", scope.reply, finish_reason(scope))
    else:
        attributes["error.type"] = scope.outcome.value
    return attributes


def finish_reason(scope: AgentCallScope) -> str:
    return "length" if scope.truncated else "stop"


def _messages(role: str, text: str, finish: str = "") -> str:
    message: dict[str, object] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish:
        message["finish_reason"] = finish
    return json.dumps([message], ensure_ascii=False)
