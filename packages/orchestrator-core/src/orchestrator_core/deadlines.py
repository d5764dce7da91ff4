"""The time an agent call has left, for backends that plan retries within it.

The engine bounds every agent call with a timeout and cancels it when that passes. A backend
that retries (after a 429, say) does better to know the bound than to be cut off: it can give
up with its own, truer error ("rate limited") while there is time to say so, and never sleep
past the end. The engine sets the deadline here around each call; backends read it.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token

_CALL_DEADLINE: ContextVar[float | None] = ContextVar("orchestrator_call_deadline", default=None)


class call_deadline:
    """Within the block, calls have ``seconds`` left at most (never more than an outer bound).

    A class rather than a generator-based context manager: it wraps every agent call, and a
    generator's frame and its ``contextlib`` wrapper cost more than the deadline itself."""

    __slots__ = ("_seconds", "_token")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._token: Token[float | None] | None = None

    def __enter__(self) -> None:
        end = asyncio.get_running_loop().time() + self._seconds
        outer = _CALL_DEADLINE.get()
        self._token = _CALL_DEADLINE.set(end if outer is None else min(outer, end))

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _CALL_DEADLINE.reset(self._token)


def seconds_left() -> float | None:
    """Seconds until the current call's deadline, or None outside any deliberation."""
    end = _CALL_DEADLINE.get()
    return None if end is None else max(0.0, end - asyncio.get_running_loop().time())
