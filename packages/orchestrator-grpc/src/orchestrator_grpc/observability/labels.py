"""Label values a metric may carry: few, named by the configuration, never ids or secrets.

Every label of the service's metrics takes its values from a fixed set (phases, outcomes,
status codes) or from what the operator configured or installed (roles, backends, models,
checks). :class:`LabelValues` holds one label's values and folds anything beyond its cap
into :data:`OTHER`, so a series count stays bounded whatever a plugin or a client sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePath
from urllib.parse import urlsplit

from orchestrator_core.redaction import redact_url
from orchestrator_core.settings import Settings

OTHER = "other"
"""The value of every label value beyond its label's cap."""
UNKNOWN = "unknown"
"""An empty value: e.g. the model of an agent whose backend does not say."""
DEFAULT_ENDPOINT = "default"
"""The endpoint of a council that names none (its backend's default)."""


class LabelValues:
    """The values one label may take: those the configuration names first, then the first
    others seen, up to ``cap`` distinct values in all; any further value is :data:`OTHER`.

    Used on the event loop's thread only (no lock)."""

    def __init__(self, cap: int, known: Iterable[str] = ()) -> None:
        self.cap = cap
        self._values: set[str] = set()
        self.allow(known)

    def allow(self, values: Iterable[str]) -> None:
        """Name more values (installed checks, once the plugins are known), within the cap."""
        for value in values:
            self(value)

    def __call__(self, value: str) -> str:
        if not value:
            return UNKNOWN
        if value in self._values:
            return value
        if len(self._values) < self.cap:
            self._values.add(value)
            return value
        return OTHER


def one_of(value: str, allowed: frozenset[str]) -> str:
    """``value`` when it is one of a fixed set, else :data:`OTHER`."""
    return value if value in allowed else OTHER


def configured_roles(settings: Settings) -> list[str]:
    return sorted(settings.councils)


def configured_backends(settings: Settings) -> list[str]:
    return sorted({council.backend for council in settings.councils.values() if council.backend})


def configured_models(settings: Settings) -> list[str]:
    """Every model a council's options name, for all its agents."""
    models: set[str] = set()
    for council in settings.councils.values():
        for options in (council.options, *council.agent_options):
            model = options.get("model")
            if isinstance(model, str) and model:
                models.add(model)
    return sorted(models)


def endpoint_label(endpoint: str) -> str:
    """How a breaker's endpoint is shown: a URL without its credentials (user, password and
    query values masked), or a program's file name without its arguments (which may hold a
    key), or :data:`DEFAULT_ENDPOINT` for the backend's default."""
    endpoint = endpoint.strip()
    if not endpoint:
        return DEFAULT_ENDPOINT
    try:
        parts = urlsplit(endpoint)
        is_url = bool(parts.scheme and parts.netloc)
    except ValueError:
        is_url = False
    if is_url:
        return redact_url(endpoint)
    words = [word for word in re.split(r"[\s'\"\[\],]+", endpoint) if word]
    return PurePath(words[0]).name if words else DEFAULT_ENDPOINT
