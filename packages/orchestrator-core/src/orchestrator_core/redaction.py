"""Secrets kept out of messages, logs and records: one place that knows how."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit, urlunsplit

REDACTED = "***"


@lru_cache(maxsize=256)  # a council's few endpoints, redacted for every deliberation's record
def redact_url(url: str) -> str:
    """``url`` without its ``user:password@`` part (a user name alone can be a token) and
    with every query value masked.

    Keys travel in both places (``https://user:key@host``, ``?api_key=…``), so neither
    reaches a message, a log line or a stored record.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<a URL that could not be parsed>"
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    query = "&".join(f"{key}={REDACTED}" for key, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, host, parts.path, query, ""))
