"""The time an agent call has left, for backends that plan retries within it.

The engine bounds every agent call with a timeout and cancels it when that passes. A backend
that retries (after a 429, say) does better to know the bound than to be cut off: it can give
up with its own, truer error ("rate limited") while there is time to say so, and never sleep
past the end. The engine sets the deadline here around each call; backends read it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_CALL_DEADLINE: ContextVar[float | None] = ContextVar("orchestrator_call_deadline", default=None)


@contextmanager
def call_deadline(seconds: float) -> Iterator[None]:
    """Within the block, calls have ``seconds`` left at most (never more than an outer bound)."""
    end = asyncio.get_running_loop().time() + seconds
    outer = _CALL_DEADLINE.get()
    token = _CALL_DEADLINE.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _CALL_DEADLINE.reset(token)


def seconds_left() -> float | None:
    """Seconds until the current call's deadline, or None outside any deliberation."""
    end = _CALL_DEADLINE.get()
    return None if end is None else max(0.0, end - asyncio.get_running_loop().time())
