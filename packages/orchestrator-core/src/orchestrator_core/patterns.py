"""Regular expressions a client sends (``re:PATTERN`` constraints), compiled by RE2.

A client's pattern runs on the server against every proposal. Python's ``re`` backtracks:
``(.*\\s*)*Z$`` against a few kilobytes runs for hours while holding the GIL, so one
request would freeze every other request and the health check with it. RE2 matches in time
linear in the input, whatever the pattern; it refuses what it cannot match that way
(backreferences, lookarounds) and patterns whose automaton would be too large, and such a
pattern is refused when the request arrives, naming it.
"""

from __future__ import annotations

from typing import Protocol

import re2  # type: ignore[import-untyped]

from orchestrator_core.errors import InvalidRequest

PREFIX = "re"
"""The kind of a constraint item that is a regular expression: ``re:PATTERN``."""


class Found(Protocol):
    """Where a pattern matched (character offsets)."""

    def start(self, group: int = 0) -> int: ...


class Pattern(Protocol):
    """A compiled pattern: ``search`` runs in time linear in the text."""

    def search(self, text: str) -> Found | None: ...


def pattern_of(item: str) -> str | None:
    """The pattern of a ``re:PATTERN`` constraint item, or None if the item is of another kind."""
    kind, _, value = item.partition(":")
    if kind.strip() != PREFIX or not value.strip():
        return None
    return value.strip()


def compiled(pattern: str, *, multiline: bool = True) -> Pattern:
    """The pattern compiled by RE2 (``^``/``$`` at line ends unless ``multiline`` is false).

    Raises:
        InvalidRequest: RE2 refuses the pattern; the message names it and says why.
    """
    options = re2.Options()
    options.log_errors = False  # a client's input is not the server's log
    try:
        return re2.compile(("(?m)" if multiline else "") + pattern, options)  # type: ignore[no-any-return]
    except re2.error as error:
        raise InvalidRequest(
            f"pattern {pattern!r} is not one the server can run: {_reason(error)}. Patterns are RE2 "
            "syntax, matched in linear time: no backreferences (\\1), no lookarounds ((?=, (?!, (?<=, "
            "(?<!), repetition counts up to 1000"
        ) from None


def escaped(text: str) -> str:
    """``text`` as an RE2 pattern that matches it literally."""
    return str(re2.escape(text))


def check_items(field: str, items: tuple[str, ...]) -> None:
    """Refuses a request whose ``re:`` items RE2 cannot compile (``field`` names the list)."""
    for item in items:
        pattern = pattern_of(item)
        if pattern is not None:
            try:
                compiled(pattern)
            except InvalidRequest as error:
                raise InvalidRequest(f"constraints.{field}: {error}") from None


def _reason(error: Exception) -> str:
    reason = error.args[0] if error.args else ""
    if isinstance(reason, bytes):
        return reason.decode("utf-8", "replace")
    return str(reason)
