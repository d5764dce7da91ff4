"""What an LLM server's failures mean, said the same way by every backend.

The core maps :class:`BackendUnavailable` to UNAVAILABLE and :class:`BackendRejected`
to FAILED_PRECONDITION: a refusal that the same request would meet again (bad
credentials, an unknown model, a 4xx such as a prompt past the context length, a prompt
that cannot be made to fit) is never retried, and what must change is the configuration
(model, context_tokens, max_tokens), not the client's call. Everything else here is a
plain :class:`AgentError`, recorded as that agent's failure.

No message ever holds a key: servers may echo a (masked) key in their own error text, so
on authentication errors that text is left out entirely, and any other text taken from a
server is scrubbed of the key and cut short.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import SecretStr

from orchestrator_core.errors import AgentError, BackendRejected, BackendUnavailable
from orchestrator_core.redaction import redact_url

MAX_SERVER_TEXT = 300

_MODEL_MISSING = re.compile(
    r"model.*(not found|does not exist|doesn't exist|not exist|no such|not available|unknown)"
    r"|(unknown|no such|invalid) model",
    re.IGNORECASE | re.DOTALL,
)


class MalformedReply(AgentError):
    """The server answered, but not with a usable reply (bad JSON, no choices, no content)."""


class RequestRejected(BackendRejected):
    """The server refused the request with a 4xx (e.g. a prompt past the context length):
    sent again unchanged, it would be refused again."""


class PromptTooLong(BackendRejected):
    """The prompt cannot fit the model's context window beside the reply's budget, even
    shortened; it was not sent."""


class ServerFailed(BackendUnavailable):
    """The server kept failing (5xx) or was rate limiting past the call's deadline: for the
    client and for the endpoint's circuit breaker, the backend is unavailable."""


class ServerText:
    """Text from a server's error body, made safe to show."""

    def __init__(self, secret: SecretStr | None) -> None:
        self._secret = secret.get_secret_value() if secret is not None else ""

    def clean(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        text = " ".join(text.split())
        if len(text) > MAX_SERVER_TEXT:
            text = text[: MAX_SERVER_TEXT - 1] + "…"
        return text

    def of_body(self, body: bytes | str | Any) -> str:
        """The error message in a JSON error body, in any of the shapes servers use, else the text."""
        value: Any = body
        if isinstance(body, bytes | str):
            raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            try:
                value = json.loads(raw)
            except ValueError:
                return self.clean(raw)
        return self.clean(_message_in(value))


def _message_in(value: Any) -> str:
    """OpenAI: {"error": {"message"}}; Ollama: {"error": "..."}; vLLM: {"message"};
    FastAPI: {"detail"}; Anthropic: {"type": "error", "error": {"message"}}."""
    if isinstance(value, dict):
        for key in ("error", "message", "detail"):
            inner = value.get(key)
            if isinstance(inner, str) and inner.strip():
                return inner
            if isinstance(inner, dict | list) and inner:
                return _message_in(inner)
        return json.dumps(value)[:MAX_SERVER_TEXT] if value else ""
    if isinstance(value, list):
        return _message_in(value[0]) if value else ""
    return "" if value is None else str(value)


def says_model_missing(message: str, code: object = None) -> bool:
    return code == "model_not_found" or bool(_MODEL_MISSING.search(message))


def unreachable(kind: str, endpoint: str, setting: str, detail: str) -> BackendUnavailable:
    return BackendUnavailable(
        f"no {kind} server answered at {redact_url(endpoint)} ({detail}); start one there or "
        f"set {setting} (or the council's base_url option)"
    )


def no_answer(endpoint: str, seconds: float) -> BackendUnavailable:
    return BackendUnavailable(
        f"the server at {redact_url(endpoint)} sent no reply within {seconds:.3g}s; raise "
        f"request_timeout_seconds if the model is slow, or check the server"
    )


def connection_broke(endpoint: str, detail: str) -> BackendUnavailable:
    return BackendUnavailable(f"the connection to {redact_url(endpoint)} broke mid-request ({detail})")


def credentials_refused(endpoint: str, status: int, setting: str) -> BackendRejected:
    return BackendRejected(
        f"the server at {redact_url(endpoint)} refused the configured credentials (HTTP {status}); "
        f"check {setting} (or the council's api_key / api_key_env option)"
    )


def model_not_found(endpoint: str, model: str, status: int, message: str) -> BackendRejected:
    detail = f": {message}" if message else ""
    return BackendRejected(
        f"the server at {redact_url(endpoint)} has no model {model!r} (HTTP {status}{detail}); "
        f"pull or serve that model, or set the council's model option"
    )


def rate_limited(endpoint: str, message: str) -> ServerFailed:
    detail = f": {message}" if message else ""
    return ServerFailed(f"the server at {redact_url(endpoint)} is rate limiting requests (HTTP 429{detail})")


def server_error(endpoint: str, status: int, message: str) -> AgentError:
    detail = f": {message}" if message else ""
    text = f"the server at {redact_url(endpoint)} failed (HTTP {status}{detail})"
    if status in (502, 503, 504):
        return BackendUnavailable(text)
    return ServerFailed(text)


def request_rejected(endpoint: str, status: int, message: str) -> RequestRejected:
    detail = f": {message}" if message else ""
    return RequestRejected(f"the server at {redact_url(endpoint)} rejected the request (HTTP {status}{detail})")
