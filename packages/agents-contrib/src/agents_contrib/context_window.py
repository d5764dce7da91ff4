"""How many tokens a model's context holds, as its server tells, and the budget that leaves a prompt.

A request must fit the window with its reply: prompt + ``max_tokens`` + the tokens the chat
template adds around the messages (``TEMPLATE_MARGIN_TOKENS``) ≤ the window. The window is
the ``context_tokens`` option when set; else what an OpenAI-compatible server reports,
asked once per endpoint and model (the backend caches it):

- llama.cpp: ``GET {root}/props`` → ``default_generation_settings.n_ctx`` (the window of one
  slot, which is what one request gets); its ``POST {root}/tokenize`` then counts tokens;
- vLLM: ``GET {base_url}/models`` → the model's ``max_model_len``;
- Ollama: ``POST {root}/api/show`` → ``model_info["<arch>.context_length"]``, the model's
  trained maximum. Ollama runs a model with a smaller window (``OLLAMA_CONTEXT_LENGTH``,
  ``num_ctx``) that it does not report, and it cuts longer prompts silently, so the window
  taken is the model's ``num_ctx`` parameter when its Modelfile sets one, else
  ``DEFAULT_CONTEXT_TOKENS``, never more than ``context_length``;
- anything else (OpenAI, gateways): ``DEFAULT_CONTEXT_TOKENS``.

``{root}`` is the base URL without a trailing ``/v1``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from agents_contrib.backend_errors import PromptTooLong
from agents_contrib.prompt_fit import PromptBudget
from agents_contrib.tokens import TokenCounter, estimate_tokens
from orchestrator_core.redaction import redact_url

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_TOKENS = 4096
"""The window assumed when neither the options nor the server say: small, so safe."""
TEMPLATE_MARGIN_TOKENS = 64
"""Tokens kept for what the chat template adds around the two messages (role markers,
a default preamble, a BOS token); ChatML adds about a dozen, Llama 3's about thirty."""
PROBE_TIMEOUT_SECONDS = 5.0
MAX_PROBE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ContextWindow:
    """A model's context window: its size, where that came from, and the server's tokenizer if any."""

    tokens: int
    source: str
    tokenizer_url: str | None = None


def prompt_budget(window: ContextWindow, reply_tokens: int, counter: TokenCounter) -> PromptBudget:
    """The prompt's share of ``window`` once the reply and the template's margin are set aside.

    Raises:
        PromptTooLong: the reply's budget alone fills the window.
    """
    tokens = window.tokens - reply_tokens - TEMPLATE_MARGIN_TOKENS
    if tokens <= 0:
        raise PromptTooLong(
            f"max_tokens {reply_tokens:,} leaves no room for a prompt in the model's context window "
            f"of {window.tokens:,} tokens ({window.source}); lower max_tokens or raise context_tokens"
        )
    return PromptBudget(
        tokens=tokens,
        counter=counter,
        window=window.tokens,
        window_source=window.source,
        reply_tokens=reply_tokens,
        margin_tokens=TEMPLATE_MARGIN_TOKENS,
    )


def server_root(base_url: str) -> str:
    """The server's root: the base URL without its ``/v1``."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


class _NoAnswer(Exception):
    """Nothing answered at the endpoint (refused, timed out): ask again later."""


async def discover_window(
    client: httpx.AsyncClient, base_url: str, model: str, headers: Mapping[str, str]
) -> ContextWindow | None:
    """What the server at ``base_url`` says of ``model``'s window; None when no server answered
    (then the caller should not cache the default it falls back to)."""
    root = server_root(base_url)
    try:
        props = await _json(client, "GET", f"{root}/props", headers)
        n_ctx = _positive(_at(props, "default_generation_settings", "n_ctx"))
        if n_ctx:
            return ContextWindow(n_ctx, "llama.cpp /props n_ctx", tokenizer_url=f"{root}/tokenize")
        models = await _json(client, "GET", f"{base_url.rstrip('/')}/models", headers)
        entries = _at(models, "data")
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("id") == model:
                length = _positive(entry.get("max_model_len"))
                if length:
                    return ContextWindow(length, "vLLM /v1/models max_model_len")
        show = await _json(client, "POST", f"{root}/api/show", headers, {"model": model})
        ollama = _ollama_window(show)
        if ollama:
            return ollama
    except _NoAnswer:
        return None
    return ContextWindow(DEFAULT_CONTEXT_TOKENS, "the default; the server does not report its window")


def _ollama_window(show: Any) -> ContextWindow | None:
    info = _at(show, "model_info")
    if not isinstance(info, dict):
        return None
    trained = next(
        (_positive(value) for name, value in info.items() if str(name).endswith(".context_length")), 0
    )
    if not trained:
        return None
    parameters = _at(show, "parameters")
    match = re.search(r"(?m)^\s*num_ctx\s+(\d+)", parameters) if isinstance(parameters, str) else None
    if match:
        return ContextWindow(min(int(match.group(1)), trained), "Ollama /api/show num_ctx")
    return ContextWindow(
        min(DEFAULT_CONTEXT_TOKENS, trained),
        "Ollama's unreported runtime window taken as the default; set context_tokens to OLLAMA_CONTEXT_LENGTH",
    )


async def _json(
    client: httpx.AsyncClient, method: str, url: str, headers: Mapping[str, str], body: Any = None
) -> Any:
    """The JSON a probe got back, None for any answer that is not a JSON 2xx."""
    try:
        response = await client.request(
            method, url, headers=dict(headers), json=body, timeout=PROBE_TIMEOUT_SECONDS
        )
    except (httpx.ConnectError, httpx.TimeoutException) as exc:
        raise _NoAnswer(str(exc)) from None
    except httpx.HTTPError:
        return None
    if not 200 <= response.status_code < 300 or len(response.content) > MAX_PROBE_BYTES:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _at(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _positive(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(value, 0)


class ServerTokenizer:
    """llama.cpp's ``POST /tokenize`` ({"content": ...} → {"tokens": [...]}): the model's own count.

    If a request fails the estimate stands in for it, so a tokenizer hiccup never fails a call.
    """

    def __init__(self, client: Callable[[], httpx.AsyncClient], url: str, headers: Mapping[str, str]) -> None:
        self._client = client
        self._url = url
        self._headers = dict(headers)
        self.name = f"the server's tokenizer at {redact_url(url)}"

    async def count(self, text: str) -> int:
        try:
            response = await self._client().post(
                self._url,
                headers=self._headers,
                json={"content": text, "add_special": True},
                timeout=PROBE_TIMEOUT_SECONDS,
            )
            tokens = response.json().get("tokens") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            tokens = None
        if isinstance(tokens, list):
            return len(tokens)
        log.info("the tokenizer at %s did not answer; estimating instead", redact_url(self._url))
        return estimate_tokens(text)
