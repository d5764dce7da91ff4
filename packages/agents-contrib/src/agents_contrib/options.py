"""Agent options shared by the model backends: validation, secrets, and diversity across a council.

Each backend has one pydantic model for the effective options of an agent. Its
settings class (environment, ``ORCH_<BACKEND>_*``) inherits the same fields as
backend-wide defaults; a council's ``options`` (and per-agent ``agent_options``)
are laid over those defaults and validated by the options model, which forbids
unknown names so a typo is reported when the council is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from orchestrator_core.redaction import redact_url

M = TypeVar("M", bound=BaseModel)


class ModelOptions(BaseModel):
    """Options every model backend has; each backend adds its own and its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    """Name of an environment variable holding the key, so a TOML file need not hold it."""
    model: str
    max_tokens: int = Field(default=1024, ge=1)
    """The reply's length limit, always sent: a server left to its own default may generate
    until the context is full. A reply cut off at it is flagged as truncated."""
    context_tokens: int | None = Field(default=None, ge=256)
    """The model's context window in tokens; unset, the backend asks the server or assumes a
    conservative default (see :mod:`agents_contrib.context_window`)."""
    request_timeout_seconds: float = Field(default=120.0, gt=0.0)
    """Longest one HTTP request may take."""
    call_timeout_seconds: float = Field(default=170.0, gt=0.0)
    """Longest one agent call may take, retries and waits included."""
    max_retries: int = Field(default=4, ge=0, le=20)
    backoff_base_seconds: float = Field(default=0.5, ge=0.0)
    backoff_max_seconds: float = Field(default=30.0, ge=0.0)
    extra_headers: dict[str, str] = Field(default_factory=dict)
    prompts_dir: str | None = None
    """A directory of prompt templates laid over the packaged ones (see prompting)."""

    def key(self) -> SecretStr | None:
        """The API key: the option itself, else the environment variable it names."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key
        if self.api_key_env:
            value = os.environ.get(self.api_key_env, "")
            return SecretStr(value) if value else None
        return None


class SamplingOptions(BaseModel):
    """Sampling options, for backends whose API takes them."""

    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    temperature_spread: float = Field(default=0.4, ge=0.0, le=2.0)
    """Width of the band the council's temperatures are spread over, centred on temperature."""
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)


def effective_options(
    model: type[M],
    defaults: BaseModel,
    options: Mapping[str, Any],
    backend: str,
    hints: Mapping[str, str] | None = None,
) -> M:
    """The backend's defaults with a council's options laid over them, validated.

    Raises:
        ValueError: naming each unknown or unusable option, never echoing a value
            (an option may be a key).
    """
    merged = defaults.model_dump(include=set(model.model_fields))
    merged.update(options)
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        raise ValueError(_describe(exc, model, backend, hints or {})) from None


def _describe(exc: ValidationError, model: type[BaseModel], backend: str, hints: Mapping[str, str]) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or "options"
        if error["type"] == "extra_forbidden":
            hint = f" ({hints[name]})" if name in hints else ""
            problems.append(f"unknown option {name!r}{hint}")
        else:
            problems.append(f"option {name!r}: {error['msg']}")
    known = ", ".join(sorted(model.model_fields))
    return f"the {backend} backend cannot use these options: {'; '.join(problems)} (known options: {known})"


def spread(center: float, width: float, index: int, size: int, *, low: float, high: float) -> float:
    """Agent ``index``'s share of a band ``width`` wide centred on ``center``, within [low, high].

    Agents are evenly spaced across the band, so a council of N does not sample N
    times at one temperature.
    """
    value = center if size <= 1 or width <= 0 else center + (index / (size - 1) - 0.5) * width
    return round(min(max(value, low), high), 4)


def agent_seed(seed: int | None, index: int) -> int | None:
    """Each agent's own seed: the council's seed plus the agent's position, when a seed is set."""
    return None if seed is None else seed + index


def check_base_url(url: str, backend: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"the {backend} backend's base_url {redact_url(url)!r} is not an http(s) URL"
        )
    return url.rstrip("/")
