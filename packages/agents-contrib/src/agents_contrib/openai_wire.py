"""The Chat Completions wire format: the request we send and how we read what comes back.

Request (``POST {base_url}/chat/completions``, JSON)::

    {"model": "...", "messages": [{"role": "system", "content": "..."},
                                  {"role": "user", "content": "..."}],
     "stream": false, "temperature": 0.7, "max_tokens": 1024,
     "top_p": 0.9, "seed": 7}                           # these two only when set

``max_tokens`` is always sent: left unset, llama.cpp generates until the context is full.
``max_tokens`` rather than ``max_completion_tokens``: Ollama, vLLM, llama.cpp and
LM Studio all read it, and OpenAI still accepts it for chat models.

Reply: ``choices[0].message.content`` (a string, or a list of ``{"type": "text"}`` parts
on some servers), ``usage.prompt_tokens`` / ``usage.completion_tokens`` (absent on
some servers: then zero) and ``model``, the model that answered (empty when absent).
``choices[0].finish_reason`` ``"length"`` means the reply stopped at ``max_tokens``: it is
kept, flagged ``truncated``. Anything else is a
:class:`MalformedReply`, never a crash.
"""

from __future__ import annotations

import json
import math
from typing import Any

from agents_contrib.backend_errors import MalformedReply, ServerText, model_not_found, says_model_missing
from agents_contrib.prompted import strip_thinking
from agents_contrib.prompting import Prompt
from orchestrator_core.models import AgentReply, TokenUsage


def request_body(
    *,
    model: str,
    prompt: Prompt,
    temperature: float,
    top_p: float | None,
    max_tokens: int,
    seed: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ],
        "stream": False,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    if top_p is not None:
        body["top_p"] = top_p
    if seed is not None:
        body["seed"] = seed
    return body


def parse_reply(raw: bytes, *, endpoint: str, model: str, text: ServerText) -> AgentReply:
    """The reply in a 200 response body."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise MalformedReply(
            f"the server at {endpoint} answered with a body that is not JSON: {text.clean(_preview(raw))!r}"
        ) from None
    if not isinstance(data, dict):
        raise MalformedReply(f"the server at {endpoint} answered with JSON that is not an object")
    if data.get("error"):
        # Some proxies and servers send errors with status 200.
        said = text.of_body(data)
        error = data["error"]
        code = error.get("code") if isinstance(error, dict) else None
        if says_model_missing(said, code):
            raise model_not_found(endpoint, model, 200, said)
        raise MalformedReply(f"the server at {endpoint} answered 200 with an error: {said}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedReply(f"the server at {endpoint} answered with no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise MalformedReply(f"the server at {endpoint} answered with a choice that has no message")
    content = strip_thinking(_content_text(message.get("content"))).strip()
    if not content:
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal.strip():
            raise MalformedReply(f"the model refused to answer: {text.clean(refusal)}")
        finish = choice.get("finish_reason")
        why = f" (finish_reason {finish!r})" if isinstance(finish, str) else ""
        raise MalformedReply(f"the server at {endpoint} answered with no content{why}")
    truncated = choice.get("finish_reason") == "length"
    answered_by = data.get("model")
    return AgentReply(
        text=content, usage=_usage(data.get("usage")), truncated=truncated,
        model=text.clean(answered_by) if isinstance(answered_by, str) else "",
    )


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str)
        ]
        return "".join(parts)
    return ""


def _usage(usage: Any) -> TokenUsage:
    if not isinstance(usage, dict):
        return TokenUsage()
    return TokenUsage(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(int(value), 0)


def _preview(raw: bytes) -> str:
    return raw[:120].decode("utf-8", "replace")
