"""Optional bearer-token authentication of calls.

With tokens configured (``ORCH_AUTH_TOKENS``, ``ORCH_AUTH_TOKENS_FILE``), every call must
carry the metadata ``authorization: Bearer <token>`` with one of them, except the health
service and server reflection, which stay open so probes and tools need no secret.

A call without the header, with another scheme, or with a token the server does not know
is UNAUTHENTICATED: in gRPC's terms the caller could not be identified, which is what that
code means (PERMISSION_DENIED is for an identified caller refused an operation, and every
valid token here grants every operation). Tokens are compared in constant time, and no
token, presented or configured, is ever logged or put in an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from pathlib import Path

import grpc
from pydantic import SecretStr

from orchestrator_core.settings import Settings
from orchestrator_grpc.interceptors import (
    HEALTH_METHODS,
    REFLECTION_METHODS,
    Continuation,
    Handler,
    ServerInterceptor,
    method_of,
    rejecting,
)

log = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
SCHEME = "bearer"
MISSING = "this server requires a bearer token: send the metadata 'authorization: Bearer <token>'"
INVALID = "the bearer token is not valid for this server"
OPEN_METHODS = (HEALTH_METHODS, *REFLECTION_METHODS)


class TokensUnavailable(Exception):
    """The configured token file cannot be read or holds no token."""


def read_token_file(path: Path) -> list[SecretStr]:
    """Tokens of ``path``, one a line; blank lines and lines starting with '#' are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokensUnavailable(
            f"cannot read the token file {path} (ORCH_AUTH_TOKENS_FILE): {type(exc).__name__}"
        ) from None
    tokens = [SecretStr(line.strip()) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not tokens:
        raise TokensUnavailable(f"the token file {path} (ORCH_AUTH_TOKENS_FILE) holds no token")
    return tokens


def configured_tokens(settings: Settings) -> list[SecretStr]:
    """Every token the settings name, from the environment and the token file (blocking read)."""
    tokens = [token for token in settings.auth_tokens if token.get_secret_value().strip()]
    if settings.auth_tokens_file is not None:
        tokens += read_token_file(settings.auth_tokens_file)
    return tokens


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class BearerAuth(ServerInterceptor):
    """Lets a call through only with a known bearer token (health and reflection: always)."""

    def __init__(self, tokens: Sequence[SecretStr]) -> None:
        if not tokens:
            raise ValueError("BearerAuth needs at least one token")
        # Digests have one length, so comparing them takes the same time whatever the token.
        self._digests = [_digest(token.get_secret_value()) for token in tokens]

    def accepts(self, presented: str) -> bool:
        """True when ``presented`` is a configured token; always compares with every one."""
        digest = _digest(presented)
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(known, digest)
        return matched

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method = method_of(handler_call_details)
        if handler is None or method.startswith(OPEN_METHODS):
            return handler
        presented = _bearer_token(handler_call_details)
        if presented is None:
            log.info("refused a call to %s: no bearer token", method)
            return rejecting(handler, grpc.StatusCode.UNAUTHENTICATED, MISSING)
        if not self.accepts(presented):
            log.info("refused a call to %s: unknown bearer token", method)
            return rejecting(handler, grpc.StatusCode.UNAUTHENTICATED, INVALID)
        return handler


def _bearer_token(details: grpc.HandlerCallDetails) -> str | None:
    """The token of the call's ``authorization: Bearer <token>`` metadata, if it has one."""
    metadata = details.invocation_metadata or ()
    for key, value in metadata:
        if key.lower() != AUTHORIZATION:
            continue
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == SCHEME and token.strip():
            return token.strip()
        return None
    return None
