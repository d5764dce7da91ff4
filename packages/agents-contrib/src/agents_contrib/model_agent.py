"""What the agents of the model-server backends share: retried calls and their description.

A call is a series of attempts (:func:`~agents_contrib.resilience.call_with_retries`) within
the agent's ``call_timeout_seconds``, or less when the deliberation's deadline comes first,
with the backoff and randomness of its backend. Each backend writes its own attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from agents_contrib import backend_errors as errors
from agents_contrib.backend_base import LimitedBackend
from agents_contrib.options import ModelOptions
from agents_contrib.prompted import PromptedAgent
from agents_contrib.prompting import PromptBook
from agents_contrib.resilience import Deadline, Retryable, RetryPolicy, call_with_retries
from orchestrator_core.errors import AgentError
from orchestrator_core.models import AgentConfig, AgentIdentity, Phase
from orchestrator_core.redaction import redact_url

T = TypeVar("T")
OptionsT = TypeVar("OptionsT", bound=ModelOptions)
BackendT = TypeVar("BackendT", bound="LimitedBackend[Any]")


class ModelAgent(PromptedAgent, Generic[OptionsT, BackendT]):
    """One council member on a model server's API, made by ``backend`` with ``options``."""

    def __init__(self, config: AgentConfig, options: OptionsT, *, backend: BackendT, prompts: PromptBook) -> None:
        super().__init__(config.agent_id, config.role, prompts)
        self.named_options = frozenset(config.options)
        self.options = options
        self._backend = backend
        self._endpoint = redact_url(options.base_url)
        self._server_text = errors.ServerText(options.key())
        self._policy = RetryPolicy(
            max_retries=options.max_retries,
            backoff_base_seconds=options.backoff_base_seconds,
            backoff_max_seconds=options.backoff_max_seconds,
        )
        self._log = logging.getLogger(type(self).__module__)

    def describe(self) -> AgentIdentity:
        """The model and endpoint this agent calls; "options" when the council's options named
        either, else "settings" (the backend's ``ORCH_<BACKEND>_*`` settings or its defaults)."""
        named = self.named_options & {"model", "base_url"}
        source = "options" if named else "settings"
        return AgentIdentity(model=self.options.model, endpoint=redact_url(self.options.base_url), source=source)

    async def _with_retries(self, attempt: Callable[[float], Awaitable[T]]) -> T:
        """``attempt(seconds_left)`` until it succeeds, fails for good, or the call's time is up."""
        return await call_with_retries(
            attempt,
            policy=self._policy,
            deadline=Deadline.within(self.options.call_timeout_seconds),
            sleep=self._backend.sleep,
            rng=self._backend.rng,
        )

    def _retry(self, error: AgentError, phase: Phase, retry_after: float | None = None,
               max_retries: int | None = None) -> Retryable:
        """What an attempt raises when it failed in a way another attempt may not."""
        self._log.info("%s: %s call failed, may retry: %s", self.agent_id, phase.value, error)
        return Retryable(error, retry_after, max_retries)
