"""The ``anthropic`` backend: agents on the Anthropic Messages API, through the official SDK.

The SDK builds and authenticates the request (``POST {base_url}/v1/messages``). Its own
retries are turned off (``max_retries=0``): the shared loop in :mod:`resilience` retries
instead, so both backends answer to the call's deadline and the concurrency limit alike.
The SDK does not validate replies strictly, so what it returns is read defensively:
a misbehaving server gives a :class:`MalformedReply`, never a crash.

The SDK's ``messages.create`` (1.0 and later) takes no sampling parameters, so this
backend has no temperature, top_p or seed options: asking for one is an error at
startup that says so. The model samples with its own defaults, so the agents of a
council still write different proposals.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents_contrib import backend_errors as errors
from agents_contrib.backend_base import LimitedBackend
from agents_contrib.context_window import ContextWindow, prompt_budget
from agents_contrib.model_agent import ModelAgent
from agents_contrib.options import ModelOptions, check_base_url, effective_options
from agents_contrib.plugin_hooks import settings_hooks
from agents_contrib.prompt_fit import PromptBudget
from agents_contrib.prompting import Prompt, prompt_book
from agents_contrib.resilience import REFUSED_LOCALLY_RETRIES, LoopLocal, refused_locally, retry_after_seconds
from agents_contrib.tokens import ESTIMATE
from orchestrator_core.errors import AgentError, BackendRejected
from orchestrator_core.models import AgentConfig, AgentReply, Phase, TokenUsage

if TYPE_CHECKING:
    import anthropic

ORCHESTRATOR_PLUGIN_API = ">=1.0,<2"
"""The orchestrator plugin API versions this plugin supports."""

log = logging.getLogger(__name__)


@cache
def _sdk() -> ModuleType:
    """The Anthropic SDK, imported on first use: it takes about a second to import, which
    every service start would otherwise pay whether or not a council uses this backend."""
    return importlib.import_module("anthropic")

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MODEL = "claude-sonnet-4-5"
BASE_URL_SETTING = "ORCH_ANTHROPIC_BASE_URL"
API_KEY_SETTING = "ORCH_ANTHROPIC_API_KEY"
KIND = "Anthropic API"
DEFAULT_CONTEXT_TOKENS = 200_000
"""Claude's context window; the Messages API does not report it, and a model with a larger
one (or a beta that enables it) is named with the context_tokens option."""
TRUNCATING_STOPS = ("max_tokens", "model_context_window_exceeded")


class AnthropicOptions(ModelOptions):
    """The options of one ``anthropic`` agent; council options use these names."""

    base_url: str = DEFAULT_BASE_URL
    """Without ``/v1``: the SDK adds ``/v1/messages``."""
    model: str = DEFAULT_MODEL
    max_tokens: int = Field(default=4096, ge=1)  # required by the API


class AnthropicSettings(BaseSettings, AnthropicOptions):
    """Backend-wide defaults, from ``ORCH_ANTHROPIC_*``."""

    model_config = SettingsConfigDict(env_prefix="ORCH_ANTHROPIC_", extra="ignore")

    max_concurrency: int = Field(default=4, ge=1, le=1024)


_NO_SAMPLING_REASON = "the Messages API, as the official SDK (1.0 and later) models it, takes no sampling parameters"
_HINTS = {
    **dict.fromkeys(("temperature", "temperature_spread", "top_p", "top_k", "seed"), _NO_SAMPLING_REASON),
    "max_concurrency": "it is backend-wide: set ORCH_ANTHROPIC_MAX_CONCURRENCY",
}

_ClientKey = tuple[str, str, tuple[tuple[str, str], ...]]


class AnthropicBackend(LimitedBackend[AnthropicSettings]):
    name = "anthropic"

    settings_type = AnthropicSettings

    def __init__(self, settings: AnthropicSettings | None = None, **shared: Any) -> None:
        super().__init__(settings, **shared)
        self._clients: LoopLocal[dict[_ClientKey, anthropic.AsyncAnthropic]] = LoopLocal(dict)

    def create(self, config: AgentConfig) -> AnthropicAgent:
        options = effective_options(AnthropicOptions, self.settings, config.options, self.name, _HINTS)
        check_base_url(options.base_url, self.name)
        if options.key() is None:
            raise ValueError(
                f"the anthropic backend needs an API key: set {API_KEY_SETTING}, or the council's "
                f"api_key or api_key_env option"
            )
        prompts = prompt_book(options.prompts_dir or self.prompts_dir)
        return AnthropicAgent(config, options, backend=self, prompts=prompts)

    def client(self, options: AnthropicOptions) -> anthropic.AsyncAnthropic:
        """One SDK client per endpoint, key and headers, per event loop; agents come and go."""
        secret = options.key()
        key_value = secret.get_secret_value() if secret is not None else ""
        cache_key = (options.base_url, key_value, tuple(sorted(options.extra_headers.items())))
        clients = self._clients.get()
        client = clients.get(cache_key)
        if client is None:
            client = _sdk().AsyncAnthropic(
                api_key=key_value,
                base_url=options.base_url,
                max_retries=0,
                default_headers=options.extra_headers or None,
            )
            clients[cache_key] = client
        return client


class AnthropicAgent(ModelAgent[AnthropicOptions, AnthropicBackend]):
    async def prompt_budget(self) -> PromptBudget:
        """The window from the options (the API reports none); tokens estimated, as the API's
        token counting would cost a request per call."""
        if self.options.context_tokens is not None:
            window = ContextWindow(self.options.context_tokens, "the context_tokens option")
        else:
            window = ContextWindow(DEFAULT_CONTEXT_TOKENS, "the anthropic backend's default")
        return prompt_budget(window, self.options.max_tokens, ESTIMATE)

    def request_params(self, prompt: Prompt) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.options.model,
            "max_tokens": self.options.max_tokens,
            "system": prompt.system,
            "messages": [{"role": "user", "content": prompt.user}],
        }
        return params

    async def complete(self, prompt: Prompt, phase: Phase) -> AgentReply:
        params = self.request_params(prompt)

        async def attempt(seconds_left: float) -> AgentReply:
            return await self._attempt(params, seconds_left, phase)

        return await self._with_retries(attempt)

    async def _attempt(self, params: dict[str, Any], seconds_left: float, phase: Phase) -> AgentReply:
        seconds = max(min(self.options.request_timeout_seconds, seconds_left), 0.001)
        client = self._backend.client(self.options)
        sdk = _sdk()
        async with self._backend.limit():
            try:
                async with asyncio.timeout(seconds):
                    message = await client.messages.create(**params, timeout=seconds)
            except TimeoutError:
                raise self._retry(errors.no_answer(self._endpoint, seconds), phase) from None
            except sdk.APITimeoutError:
                raise self._retry(errors.no_answer(self._endpoint, seconds), phase) from None
            except sdk.APIConnectionError as exc:
                refused = refused_locally(exc, self.options.base_url)
                detail = "connection refused" if refused else str(exc) or "connection failed"
                error = errors.unreachable(KIND, self._endpoint, BASE_URL_SETTING, detail)
                raise self._retry(error, phase, max_retries=REFUSED_LOCALLY_RETRIES if refused else None) from None
            except sdk.APIStatusError as exc:
                raise self._status_error(exc, phase) from None
            except json.JSONDecodeError:
                raise errors.MalformedReply(
                    f"the server at {self._endpoint} answered with a body that is not JSON"
                ) from None
            except (sdk.AnthropicError, ValueError, TypeError) as exc:
                raise AgentError(f"the request to {self._endpoint} failed: {type(exc).__name__}: {exc}") from None
        return self._reply(message)

    def _status_error(self, exc: anthropic.APIStatusError, phase: Phase) -> Exception:
        status, endpoint = exc.status_code, self._endpoint
        if status in (401, 403):
            return errors.credentials_refused(endpoint, status, API_KEY_SETTING)
        message = self._server_text.of_body(exc.body if exc.body is not None else "")
        error_type = _field(_field(exc.body, "error"), "type")
        if status == 429:
            return self._retry(errors.rate_limited(endpoint, message), phase, retry_after_seconds(exc.response.headers))
        if status >= 500:
            error = errors.server_error(endpoint, status, message)
            return self._retry(error, phase, retry_after_seconds(exc.response.headers))
        if status == 404 and error_type == "not_found_error" and "model" in message.lower():
            return errors.model_not_found(endpoint, self.options.model, status, message)
        if status in (400, 404) and errors.says_model_missing(message):
            return errors.model_not_found(endpoint, self.options.model, status, message)
        if status == 404:
            return BackendRejected(
                f"no Messages API at {endpoint}/v1/messages (HTTP 404); check the base_url "
                f"(without /v1, e.g. {DEFAULT_BASE_URL})"
            )
        return errors.request_rejected(endpoint, status, message)

    def _reply(self, message: object) -> AgentReply:
        """The text blocks and usage of a Messages reply, read without trusting its shape."""
        endpoint = self._endpoint
        if _field(message, "type") == "error":
            said = self._server_text.of_body({"error": _field(message, "error") or "unspecified error"})
            if errors.says_model_missing(said):
                raise errors.model_not_found(endpoint, self.options.model, 200, said)
            raise errors.MalformedReply(f"the server at {endpoint} answered 200 with an error: {said}")
        content = _field(message, "content")
        if not isinstance(content, list):
            raise errors.MalformedReply(f"the server at {endpoint} answered with no content blocks")
        texts = [
            text
            for block in content
            if _field(block, "type") == "text" and isinstance(text := _field(block, "text"), str)
        ]
        joined = "".join(texts).strip()
        if not joined:
            stop = _field(message, "stop_reason")
            if stop == "refusal":
                raise errors.MalformedReply("the model refused to answer (stop_reason 'refusal')")
            why = f" (stop_reason {stop!r})" if isinstance(stop, str) else ""
            raise errors.MalformedReply(f"the server at {endpoint} answered with no text{why}")
        usage = _field(message, "usage")
        truncated = _field(message, "stop_reason") in TRUNCATING_STOPS
        if truncated:
            log.warning("%s: reply cut off at max_tokens %d", self.agent_id, self.options.max_tokens)
        answered_by = _field(message, "model")
        return AgentReply(
            text=joined,
            usage=TokenUsage(_count(_field(usage, "input_tokens")), _count(_field(usage, "output_tokens"))),
            truncated=truncated,
            model=self._server_text.clean(answered_by) if isinstance(answered_by, str) else "",
        )


def _field(value: object, name: str) -> Any:
    if isinstance(value, dict):
        return value.get(name)
    if isinstance(value, str | bytes | list | int | float) or value is None:
        return None
    return getattr(value, name, None)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(value, 0)


plugin_settings, register_agents_configured, register_agents = settings_hooks(
    "anthropic", AnthropicSettings, AnthropicBackend, hook="register_agents"
)
