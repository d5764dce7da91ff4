"""The time an agent call has left, for backends that plan retries within it.

The engine bounds every agent call with a timeout and cancels it when that passes. A backend
that retries (after a 429, say) does better to know the bound than to be cut off: it can give
up with its own, truer error ("rate limited") while there is time to say so, and never sleep
past the end. The engine sets the deadline here around each call; backends read it.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token
from typing import Any

from orchestrator_core.plugin_calls import stall_clock

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


class SharedDeadline:
    """One timer for calls that start together with the same timeout (a phase's agent calls):
    each call still running at the deadline is cancelled, as a
    :class:`~orchestrator_core.plugin_calls.Budget` per call would cancel it, with one timer
    handle for them all instead of one per call.

    The caller creates each call's task, hands it to :meth:`watch`, and the call calls
    :meth:`release` as soon as its awaited work ends (whatever follows in the task, a
    checkpoint say, is not bounded). :meth:`release` says whether this deadline's own
    cancellation is what ended the call (then the call reports a timeout; a cancellation
    anyone else requested stays one), and takes that cancellation back (``uncancel``).

    Loop stalls, as :class:`Budget` counts them: when the loop watchdog saw the loop stalled
    by another task while a call waited, that call's deadline moves by as much, so one agent
    blocking the loop does not time out its peers. The deadline runs from when the phase
    starts its calls, not from each call's first step, so an agent that blocks the loop before
    its peers' first step counts against them too unless the watchdog (which the service always
    runs) measured the stall.
    """

    __slots__ = ("_clock", "_deadline", "_due", "_expiring", "_handle", "_loop", "_moved", "_watched", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._clock = stall_clock(self._loop)
        self._deadline = self._due = self._loop.time() + seconds
        self._watched: dict[asyncio.Task[Any], float] = {}
        """Each call still running, and the stalled seconds (others') its deadline has excused."""
        self._moved: dict[asyncio.Task[Any], float] = {}
        """The calls whose deadline moved (by the stalls others caused), and where it is now."""
        self._expiring: set[asyncio.Task[Any]] = set()
        self._handle: asyncio.Handle | None = None

    def watch(self, task: asyncio.Task[Any]) -> None:
        """Bound ``task`` (just created, so nothing has cancelled it yet) by this deadline; an
        eager task that already ended needs no bound."""
        if task.done():
            return
        self._watched[task] = 0.0 if self._clock is None else self._clock.stalled_seconds(excluding=task)
        if self._handle is None:
            self._handle = self._loop.call_at(self._due, self._on_deadline)

    def release(self, task: asyncio.Task[Any]) -> bool:
        """``task``'s call has ended: it is no longer bounded. True when this deadline's own
        cancellation ended it and no one else's is pending."""
        self._watched.pop(task, None)  # an eager task may end before it was watched
        if not self._expiring or task not in self._expiring:
            return False
        self._expiring.discard(task)
        return task.uncancel() == 0

    def restart(self, seconds: float) -> None:
        """Bound the next calls (the next phase's, the previous all ended) by a deadline
        ``seconds`` from now. An armed timer is kept when it fires no later than that (it is
        set again then, for whatever still runs), so a deliberation's phases, one after another
        with the same timeout, share one timer handle instead of arming and cancelling one each."""
        self.seconds = seconds
        self._deadline = self._loop.time() + seconds
        self._watched.clear()
        self._moved.clear()
        self._expiring.clear()
        if self._handle is not None and self._due > self._deadline:
            self._handle.cancel()
            self._handle = None
        if self._handle is None:
            self._due = self._deadline

    def close(self) -> None:
        """Stop the timer (every call has ended)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _on_deadline(self) -> None:
        """Every call whose deadline this is expires, on the next iteration (a result already
        delivered, its wake-up queued in this one, is taken first), unless the loop stalls
        others caused while it waited move its deadline past now."""
        self._handle = None
        now, due, later = self._loop.time(), [], float("inf")
        for task, baseline in self._watched.items():
            if task in self._expiring:
                continue
            end = self._moved.get(task, self._deadline)
            if self._clock is not None:
                stalled = self._clock.stalled_seconds(excluding=task)
                if stalled > baseline:
                    end += stalled - baseline
                    self._watched[task], self._moved[task] = stalled, end
                    if end > now:
                        later = min(later, end)
                        continue
            if end > self._due:
                later = min(later, end)
            else:
                due.append(task)
        if due:
            self._loop.call_soon(self._expire, due)
        if later < float("inf"):
            self._due = later
            self._handle = self._loop.call_at(later, self._on_deadline)

    def _expire(self, due: list[asyncio.Task[Any]]) -> None:
        for task in due:
            if task in self._watched and task not in self._expiring:  # not released meanwhile
                self._expiring.add(task)
                task.cancel()
