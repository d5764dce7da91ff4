"""Calls into plugin code: which one is running, what each plugin's calls cost, running the
blocking ones off the event loop, and bounding each with a budget of its own.

Every call the core makes into a plugin (an agent's ``generate``, ``critique``, ``revise`` or
``select``; a check's ``run``) is made inside :func:`plugin_call`, which names it (a
:class:`PluginCall`: "check 'lint' run", "agent dev-2 generate (backend 'openai')"). The
name is kept per asyncio task, so the loop watchdog (:mod:`orchestrator_core.watchdog`),
from its own thread, can say which plugin call was running when the loop stalled.

Failures are counted against the plugin object that failed (:class:`PluginFailureCounters`):
bugs (anything outside the documented errors, or an unusable return value), timeouts,
documented agent errors and loop stalls. GetStatus reports them.

Blocking calls (a check that declares ``blocking = True``, or whose ``run`` is not a coroutine
function) run in a thread of their own (:class:`OffLoopRunner`): a *daemon* thread, started
per call, not a thread of the loop's default executor. A thread cannot be stopped; one whose
call never returns is abandoned at its timeout (counted, and logged when it ends), and since
it is a daemon thread it does not hold up the interpreter's exit, as the default executor's
threads would (``asyncio.run`` joins them).

A :class:`Budget` is ``asyncio.timeout`` that measures only the call's own time: when the
loop watchdog saw the loop stalled by *another* task while the call waited, the deadline moves
by that much. One check blocking the loop never times out another.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

CHECK = "check"
BACKEND = "backend"


@dataclass(frozen=True)
class PluginCall:
    """One call into a plugin: ``kind`` "check" or "backend", ``name`` the check's or the
    backend's name, ``call`` the method ("run", "generate", ...), ``agent`` the agent's id."""

    kind: str
    name: str
    call: str
    agent: str = ""

    def __str__(self) -> str:
        if self.kind == CHECK:
            return f"check {self.name!r} {self.call}"
        described = f"agent {self.agent} {self.call}"
        return f"{described} (backend {self.name!r})" if self.name else described

    @property
    def plugin(self) -> str:
        """The plugin object: "check 'lint'" or "backend 'openai'"."""
        return f"{self.kind} {self.name!r}"

    @property
    def bug_note(self) -> str:
        """Appended to the error a plugin's bug becomes, e.g. "[a bug in backend 'openai'
        (agent dev-2 generate); see the service log]"."""
        where = f"agent {self.agent} {self.call}" if self.kind == BACKEND else self.call
        return f"[a bug in {self.plugin} ({where}); see the service log]"


# -- which plugin call is running ---------------------------------------------------------

_CURRENT: ContextVar[PluginCall | None] = ContextVar("orchestrator_plugin_call", default=None)
NamedCall = PluginCall | Callable[[], PluginCall]
"""A plugin call, or what names it when asked (built only if the watchdog asks)."""

_BY_TASK: dict[asyncio.Task[Any], list[NamedCall]] = {}
"""The plugin calls each task is inside, innermost last; read by the watchdog's thread."""


class plugin_call:
    """Within the block, ``call`` is the plugin call running (for this task).

    A class rather than a generator-based context manager: it wraps every agent call and
    check, and a generator's frame and its ``contextlib`` wrapper cost more than its work."""

    __slots__ = ("_call", "_task", "_token")

    def __init__(self, call: PluginCall) -> None:
        self._call = call
        self._token: contextvars.Token[PluginCall | None] | None = None
        self._task: asyncio.Task[Any] | None = None

    def __enter__(self) -> None:
        self._token = _CURRENT.set(self._call)
        try:
            self._task = asyncio.current_task()
        except RuntimeError:  # no running loop: a call made in a worker thread
            self._task = None
        if self._task is not None:
            entered(self._task, self._call)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
        if self._task is not None:
            left(self._task)


def entered(task: asyncio.Task[Any], call: NamedCall) -> None:
    """``task`` runs ``call`` from now on (until :func:`left`): what :class:`plugin_call` does
    without its context variable, for a caller that has its task at hand (a phase's agent
    call, whose task is its own). ``call`` may be a function that names it, called only when
    the watchdog asks (from its thread: it must only read what does not change)."""
    stack = _BY_TASK.get(task)
    if stack is None:
        _BY_TASK[task] = [call]
    else:
        stack.append(call)


def left(task: asyncio.Task[Any]) -> None:
    """``task`` has left the innermost plugin call it :func:`entered`."""
    stack = _BY_TASK.get(task)
    if stack:
        stack.pop()
        if not stack:
            del _BY_TASK[task]


def current_plugin_call() -> PluginCall | None:
    """The plugin call the caller runs inside, if any: its task's innermost, else (in a worker
    thread) the one the caller's context carries."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop: a worker thread
        task = None
    return plugin_call_of(task) or _CURRENT.get()


def plugin_call_of(task: asyncio.Task[Any] | None) -> PluginCall | None:
    """The innermost plugin call ``task`` is inside; safe to call from another thread."""
    if task is None:
        return None
    stack = _BY_TASK.get(task)
    try:
        found = stack[-1] if stack else None
    except IndexError:  # emptied meanwhile by the loop's thread
        return None
    return found if found is None or isinstance(found, PluginCall) else found()


# -- failures per plugin ----------------------------------------------------------------------

FAILURE_KINDS = ("bugs", "timeouts", "errors", "loop_stalls")


@dataclass(frozen=True)
class PluginFailures:
    """Failures counted against one plugin object (see the module's docstring)."""

    kind: str
    name: str
    bugs: int = 0
    timeouts: int = 0
    errors: int = 0
    loop_stalls: int = 0


class PluginFailureCounters:
    """Failures per plugin object; the loop's thread and the watchdog's both count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], dict[str, int]] = {}

    def count(self, call: PluginCall, what: str) -> None:
        if what not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {what!r}")
        with self._lock:
            counts = self._counts.setdefault((call.kind, call.name), dict.fromkeys(FAILURE_KINDS, 0))
            counts[what] += 1

    def snapshot(self) -> tuple[PluginFailures, ...]:
        with self._lock:
            return tuple(PluginFailures(kind, name, **counts) for (kind, name), counts in sorted(self._counts.items()))

    def of(self, kind: str, name: str) -> PluginFailures:
        """One plugin object's failures (all 0 when it never failed)."""
        with self._lock:
            return PluginFailures(kind, name, **self._counts.get((kind, name), {}))


_COUNTERS: ContextVar[PluginFailureCounters | None] = ContextVar("orchestrator_plugin_failures", default=None)


class counting_failures:
    """Within the block, plugin failures are counted in ``counters`` (a class, not a
    generator: it wraps every deliberation)."""

    __slots__ = ("_counters", "_token")

    def __init__(self, counters: PluginFailureCounters) -> None:
        self._counters = counters
        self._token: contextvars.Token[PluginFailureCounters | None] | None = None

    def __enter__(self) -> None:
        self._token = _COUNTERS.set(self._counters)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _COUNTERS.reset(self._token)


def count_failure(call: PluginCall, what: str) -> None:
    """Count a failure of ``call`` in the counters the caller set, if any."""
    counters = _COUNTERS.get()
    if counters is not None:
        counters.count(call, what)


def log_plugin_bug(call: PluginCall, error: BaseException, detail: str = "") -> None:
    """A plugin's bug, logged with its traceback and the call that hit it, and counted."""
    log.error("plugin bug in %s: %s%s", call, _describe(error), f" ({detail})" if detail else "", exc_info=error)
    count_failure(call, "bugs")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


# -- blocking calls off the loop --------------------------------------------------------------


class OffLoopRunner:
    """Runs blocking plugin calls off the event loop, each in a daemon thread of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = 0

    @property
    def abandoned(self) -> int:
        """Threads whose caller stopped waiting (a timeout, a cancellation) and that still run."""
        with self._lock:
            return self._abandoned

    async def run(self, call: PluginCall, function: Callable[[], T]) -> T:
        """``function()`` in a new daemon thread (with the caller's context variables); an
        awaitable it returns is run to completion on an event loop of that thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        context = contextvars.copy_context()
        abandoned = threading.Event()
        started = time.monotonic()

        def settle(outcome: tuple[bool, Any]) -> None:
            if future.done():
                return
            ok, value = outcome
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        def work() -> None:
            outcome: tuple[bool, Any]
            try:
                outcome = (True, context.run(_call_to_completion, function))
            except BaseException as exc:  # handed to the caller, which reports it
                outcome = (False, exc)
            if abandoned.is_set():
                with self._lock:
                    self._abandoned -= 1
                log.warning(
                    "%s finished in its thread %.1fs after it started; it had been abandoned",
                    call,
                    time.monotonic() - started,
                )
                return
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                loop.call_soon_threadsafe(settle, outcome)

        thread = threading.Thread(target=work, name=f"orchestrator plugin: {call}", daemon=True)
        thread.start()
        try:
            return await future
        except asyncio.CancelledError:
            if thread.is_alive():
                with self._lock:
                    self._abandoned += 1
                abandoned.set()
                log.warning(
                    "%s is still running in its thread; it is abandoned (a daemon thread: it cannot hold up shutdown)",
                    call,
                )
            raise


def _call_to_completion(function: Callable[[], Any]) -> Any:
    result = function()
    if inspect.isawaitable(result):
        return asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


# -- budgets ------------------------------------------------------------------------------------


class StallClock(Protocol):
    """Seconds the loop stalled, as the loop watchdog measures them."""

    def stalled_seconds(self, excluding: asyncio.Task[Any] | None = None) -> float:
        """Seconds the loop was stalled so far, without the stalls ``excluding`` caused."""
        ...


_CLOCKS: dict[asyncio.AbstractEventLoop, StallClock] = {}


def set_stall_clock(loop: asyncio.AbstractEventLoop, clock: StallClock) -> None:
    """The loop watchdog of ``loop`` registers itself."""
    _CLOCKS[loop] = clock


def unset_stall_clock(loop: asyncio.AbstractEventLoop, clock: StallClock) -> None:
    """The loop watchdog of ``loop`` unregisters itself (unless another replaced it)."""
    if _CLOCKS.get(loop) is clock:
        del _CLOCKS[loop]


def stall_clock(loop: asyncio.AbstractEventLoop) -> StallClock | None:
    """The stall clock of ``loop``'s watchdog, when one watches it."""
    return _CLOCKS.get(loop)


class Budget:
    """Like ``asyncio.timeout(seconds)``, counting only the call's own time: loop stalls that
    other tasks caused while it ran (as the loop watchdog saw them) move its deadline.

    With ``strict``, a call that returns after its budget (it ran on the loop without
    yielding past its deadline, so nothing could cancel it) raises TimeoutError too.
    ``expired`` says whether the budget ran out.

    It cancels the task itself, as ``asyncio.timeout`` does (the cancellation it made becomes
    TimeoutError on the way out; one requested by anyone else stays a cancellation), with one
    timer per call rather than a Timeout object beside its own timer.
    """

    def __init__(self, seconds: float, *, strict: bool = False) -> None:
        self.seconds = seconds
        self.strict = strict
        self.expired = False
        self.excused = 0.0
        """Seconds of others' loop stalls the deadline moved by."""
        self._handle: asyncio.Handle | None = None
        self._expiring = False
        self._cancelling = 0
        self._deadline = 0.0
        self._baseline = 0.0
        self._clock: StallClock | None = None
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> Budget:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        if self._task is None:
            raise RuntimeError("Budget should be used inside a task")
        self._cancelling = self._task.cancelling()
        self._clock = stall_clock(self._loop)
        self._baseline = self._stalled()
        self._deadline = self._loop.time() + self.seconds
        self._handle = self._loop.call_at(self._deadline, self._on_deadline)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> bool | None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._expiring and self._task is not None:
            self._expiring = False
            if self._task.uncancel() <= self._cancelling and kind in (asyncio.CancelledError, None):
                self.expired = True  # ours, no other requested; or the call caught it and answered late
                raise TimeoutError from error
        if kind is None and self.strict and self._loop is not None:
            self._excuse()
            if self._loop.time() > self._deadline:
                self.expired = True
                raise TimeoutError
        return None

    def _stalled(self) -> float:
        return self._clock.stalled_seconds(excluding=self._task) if self._clock is not None else 0.0

    def _excuse(self) -> float:
        stalled = self._stalled()
        extra = stalled - self._baseline
        if extra > 0:
            self._baseline = stalled
            self._deadline += extra
            self.excused += extra
        return extra

    def _on_deadline(self) -> None:
        assert self._loop is not None
        if self._excuse() > 0 and self._deadline > self._loop.time():
            self._handle = self._loop.call_at(self._deadline, self._on_deadline)
            return
        # Expire on the next iteration: a result already delivered (its wake-up queued in
        # this one) is taken first.
        self._handle = self._loop.call_soon(self._expire)

    def _expire(self) -> None:
        assert self._task is not None
        self._handle = None
        self._expiring = True
        self._task.cancel()
