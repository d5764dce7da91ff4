"""The ``openai`` backend: agents on any OpenAI-compatible Chat Completions endpoint.

Ollama, vLLM, llama.cpp's server, LM Studio, LiteLLM and OpenAI itself all serve
``POST {base_url}/chat/completions``. The backend talks to it with ``httpx`` directly
rather than through the ``openai`` SDK: the servers differ in small ways (errors sent
with status 200, content as a list of parts, no usage, reasoning text inline), the
retry loop must answer to the call's deadline and honour ``retry-after-ms``, and every
failure must become a typed error naming the endpoint. The SDK would add its own
retries and its own strict parsing between us and those servers.

One backend object serves a process: its agents share one connection pool and one
concurrency limit (``ORCH_OPENAI_MAX_CONCURRENCY``) per event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from importlib import metadata
from typing import Any

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents_contrib import backend_errors as errors
from agents_contrib.backend_base import LimitedBackend
from agents_contrib.context_window import (
    DEFAULT_CONTEXT_TOKENS,
    ContextWindow,
    ServerTokenizer,
    discover_window,
    prompt_budget,
)
from agents_contrib.model_agent import ModelAgent
from agents_contrib.openai_wire import parse_reply, request_body
from agents_contrib.options import (
    ModelOptions,
    SamplingOptions,
    agent_seed,
    check_base_url,
    effective_options,
    spread,
)
from agents_contrib.plugin_hooks import settings_hooks
from agents_contrib.prompt_fit import PromptBudget
from agents_contrib.prompting import Prompt, PromptBook, prompt_book
from agents_contrib.resilience import REFUSED_LOCALLY_RETRIES, LoopLocal, refused_locally, retry_after_seconds
from agents_contrib.tokens import ESTIMATE, TokenCounter
from orchestrator_core.errors import AgentError, BackendRejected
from orchestrator_core.models import AgentConfig, AgentReply, Phase
from orchestrator_core.reachability import EndpointState, Reachability
from orchestrator_core.redaction import redact_url

ORCHESTRATOR_PLUGIN_API = ">=1.0,<2"
"""The orchestrator plugin API versions this plugin supports."""

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:11434/v1"
"""Ollama's OpenAI-compatible endpoint: the most common local server."""
DEFAULT_MODEL = "qwen2.5-coder:7b"
BASE_URL_SETTING = "ORCH_OPENAI_BASE_URL"
API_KEY_SETTING = "ORCH_OPENAI_API_KEY"
MAX_REPLY_BYTES = 16 * 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 10.0
PROBE_SECONDS = 5.0
KIND = "OpenAI-compatible"


def _user_agent() -> str:
    try:
        version = metadata.version("agents-contrib")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = "0"
    return f"orchestrator-agents-contrib/{version}"


class OpenAIOptions(ModelOptions, SamplingOptions):
    """The options of one ``openai`` agent; council options use these names."""

    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    seed: int | None = None
    """The council's seed; agent i sends seed + i."""


class OpenAISettings(BaseSettings, OpenAIOptions):
    """Backend-wide defaults, from ``ORCH_OPENAI_*`` (e.g. ``ORCH_OPENAI_MODEL``)."""

    model_config = SettingsConfigDict(env_prefix="ORCH_OPENAI_", extra="ignore")

    max_concurrency: int = Field(default=8, ge=1, le=1024)
    """Most requests in flight at once, across every agent of this backend."""


_HINTS = {"max_concurrency": "it is backend-wide: set ORCH_OPENAI_MAX_CONCURRENCY"}


class OpenAIBackend(LimitedBackend[OpenAISettings]):
    """Builds ``openai`` agents; holds what they share (connections, the concurrency limit)."""

    name = "openai"

    settings_type = OpenAISettings

    def __init__(self, settings: OpenAISettings | None = None, **shared: Any) -> None:
        super().__init__(settings, **shared)
        self._clients: LoopLocal[httpx.AsyncClient] = LoopLocal(self._new_client)
        self.user_agent = _user_agent()
        self._windows: dict[tuple[str, str], ContextWindow] = {}
        self._window_locks: LoopLocal[asyncio.Lock] = LoopLocal(asyncio.Lock)

    def create(self, config: AgentConfig) -> OpenAIAgent:
        options = effective_options(OpenAIOptions, self.settings, config.options, self.name, _HINTS)
        check_base_url(options.base_url, self.name)
        return OpenAIAgent(
            config,
            options,
            backend=self,
            prompts=prompt_book(options.prompts_dir or self.prompts_dir),
            temperature=spread(
                options.temperature,
                options.temperature_spread,
                config.index,
                config.council_size,
                low=0.0,
                high=2.0,
            ),
            seed=agent_seed(options.seed, config.index),
        )

    async def probe_endpoint(self, options: Mapping[str, Any]) -> Reachability:
        """Whether the endpoint ``options`` name answers (see :meth:`OpenAIAgent.probe_endpoint`)."""
        return await self.create(AgentConfig("probe", "PROBE", 0, 1, options)).probe_endpoint()

    def client(self) -> httpx.AsyncClient:
        return self._clients.get()

    async def context_window(self, options: OpenAIOptions, headers: Mapping[str, str]) -> ContextWindow:
        """The model's window: asked of the server once per endpoint and model, then cached; the
        ``context_tokens`` option, when set, overrides the size (the server's tokenizer still counts).

        A server that did not answer at all is asked again on the next call.
        """
        key = (options.base_url, options.model)
        window = self._windows.get(key)
        if window is None:
            async with self._window_locks.get():
                window = self._windows.get(key)
                if window is None:
                    window = await discover_window(self.client(), options.base_url, options.model, headers)
                    if window is None:
                        window = ContextWindow(DEFAULT_CONTEXT_TOKENS, "the default; the server did not answer")
                    else:
                        self._windows[key] = window
                        log.info("%s: context window %d tokens (%s)", redact_url(options.base_url),
                                 window.tokens, window.source)
        if options.context_tokens is not None:
            return replace(window, tokens=options.context_tokens, source="the context_tokens option")
        return window

    async def aclose(self) -> None:
        """Close the running loop's connections (for embedding; a server exits instead)."""
        client = self._clients.pop_current()
        if client is not None:
            await client.aclose()

    def _new_client(self) -> httpx.AsyncClient:
        size = self.settings.max_concurrency
        return httpx.AsyncClient(
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            follow_redirects=False,
        )


class OpenAIAgent(ModelAgent[OpenAIOptions, OpenAIBackend]):
    """One council member on a Chat Completions endpoint."""

    def __init__(
        self,
        config: AgentConfig,
        options: OpenAIOptions,
        *,
        backend: OpenAIBackend,
        prompts: PromptBook,
        temperature: float,
        seed: int | None,
    ) -> None:
        super().__init__(config, options, backend=backend, prompts=prompts)
        self.temperature = temperature
        self.seed = seed
        self._key = options.key()
        self._url = f"{options.base_url}/chat/completions"

    def point_at(self, base_url: str) -> None:
        """Send further calls to ``base_url``: for a server whose address is known only once it runs."""
        self.options = self.options.model_copy(update={"base_url": base_url})
        self._url = f"{base_url}/chat/completions"
        self._endpoint = redact_url(base_url)

    async def probe_endpoint(self) -> Reachability:
        """``GET {base_url}/models``: any answer, an error status included, means the server is
        there; no connection or no answer within a few seconds means it is not."""
        url = f"{self.options.base_url}/models"
        try:
            response = await self._backend.client().get(url, headers=self._headers(), timeout=PROBE_SECONDS)
        except httpx.HTTPError as exc:
            detail = _describe(exc, "no answer")
            return Reachability(
                EndpointState.UNREACHABLE,
                f"{self._endpoint} did not answer ({detail}); start the server or set {BASE_URL_SETTING}",
            )
        return Reachability(EndpointState.REACHABLE, f"{self._endpoint} answered HTTP {response.status_code}")

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": self._backend.user_agent,
        }
        if self._key is not None:
            headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        headers.update(self.options.extra_headers)
        return headers

    async def prompt_budget(self) -> PromptBudget:
        headers = self._headers()
        window = await self._backend.context_window(self.options, headers)
        counter: TokenCounter = ESTIMATE
        if window.tokenizer_url is not None:
            counter = ServerTokenizer(self._backend.client, window.tokenizer_url, headers)
        return prompt_budget(window, self.options.max_tokens, counter)

    def request_body(self, prompt: Prompt) -> dict[str, Any]:
        return request_body(
            model=self.options.model,
            prompt=prompt,
            temperature=self.temperature,
            top_p=self.options.top_p,
            max_tokens=self.options.max_tokens,
            seed=self.seed,
        )

    async def complete(self, prompt: Prompt, phase: Phase) -> AgentReply:
        payload = json.dumps(self.request_body(prompt)).encode("utf-8")

        async def attempt(seconds_left: float) -> AgentReply:
            return await self._attempt(payload, seconds_left, phase)

        reply = await self._with_retries(attempt)
        if reply.truncated:
            log.warning("%s: %s reply cut off at max_tokens %d", self.agent_id, phase.value, self.options.max_tokens)
        return reply

    async def _attempt(self, payload: bytes, seconds_left: float, phase: Phase) -> AgentReply:
        seconds = max(min(self.options.request_timeout_seconds, seconds_left), 0.001)
        timeout = httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT_SECONDS))
        async with self._backend.limit():
            try:
                async with asyncio.timeout(seconds):
                    status, headers, raw = await self._post(payload, timeout)
            except TimeoutError:
                raise self._retry(errors.no_answer(self._endpoint, seconds), phase) from None
            except httpx.ConnectTimeout:
                detail = f"no connection within {timeout.connect:.3g}s"
                raise self._retry(errors.unreachable(KIND, self._endpoint, BASE_URL_SETTING, detail), phase) from None
            except httpx.ConnectError as exc:
                refused = refused_locally(exc, self._url)
                detail = "connection refused" if refused else _describe(exc, "connection refused")
                error = errors.unreachable(KIND, self._endpoint, BASE_URL_SETTING, detail)
                raise self._retry(error, phase, max_retries=REFUSED_LOCALLY_RETRIES if refused else None) from None
            except httpx.TimeoutException:
                raise self._retry(errors.no_answer(self._endpoint, seconds), phase) from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                detail = _describe(exc, "the server closed the connection")
                raise self._retry(errors.connection_broke(self._endpoint, detail), phase) from None
            except httpx.HTTPError as exc:
                raise AgentError(f"the request to {self._endpoint} failed: {_describe(exc, '')}") from None
        return self._interpret(status, headers, raw, phase)

    async def _post(self, payload: bytes, timeout: httpx.Timeout) -> tuple[int, httpx.Headers, bytes]:
        client = self._backend.client()
        request = client.build_request("POST", self._url, content=payload, headers=self._headers(), timeout=timeout)
        response = await client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise errors.MalformedReply(
                        f"the server at {self._endpoint} sent a reply larger than {MAX_REPLY_BYTES} bytes"
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
        return response.status_code, response.headers, b"".join(chunks)

    def _interpret(self, status: int, headers: httpx.Headers, raw: bytes, phase: Phase) -> AgentReply:
        endpoint, model = self._endpoint, self.options.model
        if 200 <= status < 300:
            return parse_reply(raw, endpoint=endpoint, model=model, text=self._server_text)
        if status in (401, 403):
            raise errors.credentials_refused(endpoint, status, API_KEY_SETTING)
        message = self._server_text.of_body(raw)
        if status == 429:
            raise self._retry(errors.rate_limited(endpoint, message), phase, retry_after_seconds(headers))
        if status >= 500:
            error = errors.server_error(endpoint, status, message)
            raise self._retry(error, phase, retry_after_seconds(headers))
        if status in (400, 404, 422) and errors.says_model_missing(message, _error_code(raw)):
            raise errors.model_not_found(endpoint, model, status, message)
        if status == 404:
            raise BackendRejected(
                f"no Chat Completions API at {endpoint}/chat/completions (HTTP 404); check the "
                f"base_url: OpenAI-compatible servers serve it under /v1, e.g. http://host:11434/v1"
            )
        raise errors.request_rejected(endpoint, status, message)


def _describe(exc: Exception, fallback: str) -> str:
    text = str(exc).strip()
    return text if text else fallback or type(exc).__name__


def _error_code(raw: bytes) -> object:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error.get("code") if isinstance(error, dict) else None


plugin_settings, register_agents_configured, register_agents = settings_hooks(
    "openai", OpenAISettings, OpenAIBackend, hook="register_agents"
)
