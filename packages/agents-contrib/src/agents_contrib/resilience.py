"""Retries with exponential backoff and jitter, call deadlines, and per-loop shared resources.

A backend call is a series of attempts. An attempt that fails in a way worth retrying
(rate limited, a 5xx, the connection dropped or timed out) raises :class:`Retryable`; the
loop in :func:`call_with_retries` waits and tries again, as long as retries remain and
the next attempt can start before the call's deadline. Anything else ends the call.

A connection refused at a loopback address is not transient: nothing listens on that port
of this machine, and waiting does not start a server. It gets one quick retry (a server
that is starting up) instead of the policy's full series (:func:`refused_locally`).
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from orchestrator_core.deadlines import seconds_left
from orchestrator_core.errors import AgentError

T = TypeVar("T")

REFUSED_LOCALLY_RETRIES = 1
"""Retries after a loopback address refused the connection: one, for a server starting up."""

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a call."""

    max_retries: int = 4
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (0 for the first retry).

        Exponential with "equal jitter": uniform in [cap/2, cap], where
        cap = min(backoff_max, backoff_base * 2**retry). Jitter keeps the agents of a
        council, rate limited together, from retrying together.
        """
        cap = min(self.backoff_max_seconds, self.backoff_base_seconds * (2.0**retry))
        return rng.uniform(cap / 2.0, cap)


class Retryable(Exception):
    """An attempt failed in a way another attempt may not.

    Args:
        error: what the call raises if it gives up here.
        retry_after: the server's Retry-After, in seconds, when it sent one.
        max_retries: at most this many retries for this failure, whatever the policy allows.
    """

    def __init__(self, error: AgentError, retry_after: float | None = None, max_retries: int | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.max_retries = max_retries


class Deadline:
    """A point in time, on the event loop's clock, by which a call must be done."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = asyncio.get_running_loop().time() + seconds

    @classmethod
    def within(cls, seconds: float) -> Deadline:
        """``seconds`` from now, or less when the deliberation gave this call less time."""
        left = seconds_left()
        return cls(seconds if left is None else min(seconds, left))

    def remaining(self) -> float:
        return self._end - asyncio.get_running_loop().time()


def _with_note(error: AgentError, note: str) -> AgentError:
    """The same kind of error, its message extended (the type is what maps to a status)."""
    try:
        extended = type(error)(f"{error} ({note})")
    except TypeError:  # an error class with a different constructor: keep it as it is
        return error
    extended.__cause__ = error.__cause__
    return extended


async def call_with_retries(
    attempt: Callable[[float], Awaitable[T]],
    *,
    policy: RetryPolicy,
    deadline: Deadline,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run ``attempt(seconds_left)`` until it succeeds, fails for good, or time runs out.

    Cancellation propagates at once, from an attempt or from a wait between attempts.
    """
    rng = rng or random.Random()
    attempts = 0
    while True:
        attempts += 1
        try:
            return await attempt(max(deadline.remaining(), 0.0))
        except Retryable as failure:
            last = failure
        allowed = policy.max_retries if last.max_retries is None else min(policy.max_retries, last.max_retries)
        if attempts > allowed:
            raise _with_note(last.error, f"gave up after {attempts} attempt(s)") from last.error
        delay = policy.backoff(attempts - 1, rng)
        if last.retry_after is not None:
            delay = max(delay, last.retry_after)
        if delay >= deadline.remaining():
            note = (
                f"not retried: the next attempt, {delay:.3g}s away, would start after the "
                f"call's {deadline.seconds:g}s deadline; {attempts} attempt(s) made"
            )
            raise _with_note(last.error, note) from last.error
        await sleep(delay)


def refused_locally(error: BaseException, url: str) -> bool:
    """Whether ``error`` (or what caused it) is a refused connection to a loopback ``url``."""
    host = urlsplit(url).hostname or ""
    if host != "localhost" and not host.endswith(".localhost"):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False  # a name: it may resolve elsewhere next time
        if not (address.is_loopback or address.is_unspecified):
            return False
    return connection_refused(error)


def connection_refused(error: BaseException) -> bool:
    """Whether a ConnectionRefusedError is in the chain of causes behind ``error``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionRefusedError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a 429 or 503 asks for: ``retry-after-ms``, else ``Retry-After`` (seconds or a date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            value = float(milliseconds) / 1000.0
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0) if seconds == seconds else None  # NaN is no answer


class LoopLocal(Generic[T]):
    """One value per running event loop, made on first use.

    asyncio primitives and HTTP clients belong to the loop they were first used on; a
    backend object outlives loops (tests, embedding), so it keeps one of each per loop.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._values: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        value = self._values.get(loop)
        if value is None:
            value = self._factory()
            self._values[loop] = value
        return value

    def pop_current(self) -> T | None:
        return self._values.pop(asyncio.get_running_loop(), None)
