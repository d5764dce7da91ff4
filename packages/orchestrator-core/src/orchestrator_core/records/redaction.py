"""Council options as a record keeps them: every value as JSON text, secrets never."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretBytes, SecretStr

from orchestrator_core.redaction import REDACTED, redact_url

_SECRET_NAME = re.compile(
    r"(api[_-]?key|secret|passw(or)?d|token$|^token|credential|authorization|^auth|headers?$)", re.I
)


def redacted_options(options: Mapping[str, Any]) -> dict[str, str]:
    """``options`` with each value as JSON text; values of secret-looking keys (api_key,
    token, password, authorization, headers, …) and SecretStr values become ``"***"``, and
    URLs lose their credentials and query values."""
    return {str(key): json.dumps(_redacted(key, value), sort_keys=True, default=str) for key, value in options.items()}


def _redacted(key: object, value: Any) -> Any:
    if isinstance(value, SecretStr | SecretBytes) or _SECRET_NAME.search(str(key)):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): _redacted(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted("", v) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value
