"""What the conformance kit's verifications share: limits, the loop watch, the real engine."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from orchestrator_core.errors import AgentError, OrchestratorError
from orchestrator_core.hookspecs import (
    AgentBackend,
    Check,
    RegisterAgentBackend,
    RegisterCheck,
    hookimpl,
)
from orchestrator_core.models import (
    DeliberationOutcome,
    Task,
)

T = TypeVar("T")

UNKNOWN_OPTION = "orchestrator_conformance_unknown_option"
"""An option no backend knows: ``create()`` must refuse it with a ValueError naming it."""

ROLE = "DEV"
TASK = Task(ROLE, "Write a Python function add(a, b) that returns the sum of a and b.")
PROPOSAL_TEXT = "File: solution.py\n```python\ndef add(a, b):\n    return a + b\n```\n"
ONE_MEGABYTE = 1_000_000

HOSTILE_TEXTS: Mapping[str, str] = {
    "a 1 MB text": ("Write a function that adds two numbers. " * (ONE_MEGABYTE // 40 + 1))[:ONE_MEGABYTE],
    "control characters": "add(a, b)\x00\x01\x07\x08\x0b\x0c\x1b[2J\x1b]0;title\x07\x7f\x85\x9b\r\n\t end",
    "unicode": "Écris add(a, b) ✓ 🤖👩‍💻 中文 עברית \u202eevil\u202c e\u0301 \ufeff\u200b\u2028\u2029 \U0001f600",
    "markup and format strings": "[bold red]x[/bold red] <script>alert(1)</script> {task} {0} %s %(x)s ${HOME} "
    "$(rm -rf /) `id` {{ jinja }} \\N{BELL}",
}
"""Task descriptions and proposal contents a plugin must survive: each is what a client may send."""


class ConformanceError(AssertionError):
    """A plugin object broke the contract; the message says how and what is asked instead."""


@dataclass(frozen=True)
class Limits:
    """Bounds of the kit's waits. ``guard_seconds`` ends a wait that would otherwise hang (a
    call that ignores its cancellation); ``max_loop_block_seconds`` is the longest the event
    loop may stop answering while a plugin's code runs (generous: a busy machine is no fault)."""

    guard_seconds: float = 60.0
    max_loop_block_seconds: float = 5.0


DEFAULT_LIMITS = Limits()


def _label(thing: object) -> str:
    name = getattr(thing, "name", None)
    kind = type(thing).__name__
    return f"{kind} {name!r}" if isinstance(name, str) and name else kind


# -- the event loop must keep answering ------------------------------------------------


class _LoopWatch:
    """Measures the longest time the event loop did not run a heartbeat while the block ran."""

    BEAT = 0.02

    def __init__(self, limits: Limits, what: str) -> None:
        self.limits = limits
        self.what = what
        self.longest = 0.0
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.BEAT)
            now = time.monotonic()
            self.longest = max(self.longest, now - self._last - self.BEAT)
            self._last = now

    async def __aenter__(self) -> _LoopWatch:
        self._last = time.monotonic()
        self._task = asyncio.create_task(self._beat())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.longest = max(self.longest, time.monotonic() - self._last - self.BEAT)
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if kind is None and self.longest > self.limits.max_loop_block_seconds:
            raise ConformanceError(
                f"{self.what} blocked the event loop for {self.longest:.1f}s (at most "
                f"{self.limits.max_loop_block_seconds:g}s allowed): every deliberation of the service waits "
                "meanwhile. Blocking work (time.sleep, synchronous I/O or HTTP, CPU-heavy code) belongs in "
                "`await asyncio.to_thread(...)` or an async library"
            )


async def _guarded(call: Awaitable[T], limits: Limits, what: str) -> T:
    try:
        async with asyncio.timeout(limits.guard_seconds):
            return await call
    except TimeoutError:
        raise ConformanceError(f"{what} did not finish within {limits.guard_seconds:g}s") from None


# -- the real engine -----------------------------------------------------------------------


class _Subject:
    """The plugin object under test, registered as a plugin of its own."""

    def __init__(self, backends: Sequence[AgentBackend] = (), checks: Sequence[Check] = ()) -> None:
        self.backends = backends
        self.checks = checks

    @hookimpl
    def register_agents(self, register: RegisterAgentBackend) -> None:
        for backend in self.backends:
            register(backend)

    @hookimpl
    def register_checks(self, register: RegisterCheck) -> None:
        for check in self.checks:
            register(check)


@contextlib.contextmanager
def _without_orch_environment() -> Iterator[None]:
    """The kit's settings are its own: no ORCH_ variable (or settings file) of the caller's."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("ORCH_")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


@contextlib.asynccontextmanager
async def _orchestrator(
    backends: Sequence[AgentBackend], checks: Sequence[Check], limits: Limits, **settings: Any
) -> AsyncIterator[Any]:
    """A started Orchestrator over the subject's plugin, on a scratch SQLite file."""
    from orchestrator_core.orchestrator import Orchestrator
    from orchestrator_core.plugins import PluginHost
    from orchestrator_core.records.sqlite import SQLiteStore
    from orchestrator_core.settings import Settings

    host = PluginHost()
    host.register(_Subject(backends, checks), name="conformance-subject")
    host.collect()
    if host.failed:
        raise ConformanceError(f"the plugin host refused the plugin: {host.failed[0].error}")
    with tempfile.TemporaryDirectory(prefix="orchestrator-conformance-") as scratch:
        values: dict[str, Any] = {
            "database_path": Path(scratch) / "records.sqlite3",
            "endpoint_probe_seconds": 0,
            "max_task_chars": 2 * ONE_MEGABYTE,
            "agent_timeout_seconds": limits.guard_seconds,
            "check_timeout_seconds": limits.guard_seconds,
            "deliberation_timeout_seconds": limits.guard_seconds * 4,
            "selector_role": "",
            **settings,
        }
        with _without_orch_environment():
            resolved = Settings(**values)
        orchestrator = Orchestrator(resolved, host, SQLiteStore(resolved.database_path))
        council = orchestrator.councils.get(ROLE)
        if council is not None and not council.ready:
            raise ConformanceError(f"the {ROLE} council over the plugin is not ready: {council.problem}")
        await orchestrator.start()
        try:
            yield orchestrator
        finally:
            await orchestrator.close()


async def _deliberate(orchestrator: Any, task: Task, rounds: int, limits: Limits, what: str) -> DeliberationOutcome:
    from orchestrator_core.orchestrator import DeliberationRequest

    try:
        outcome: DeliberationOutcome = await _guarded(
            orchestrator.deliberate(DeliberationRequest(task, rounds=rounds)), limits, what
        )
    except OrchestratorError as exc:
        raise ConformanceError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
    return outcome


def _no_failures(outcome: DeliberationOutcome, what: str) -> None:
    if outcome.failures:
        details = "; ".join(f"{f.agent_id} in {f.phase.value}: {f.error}" for f in outcome.failures)
        raise ConformanceError(f"{what}: agent calls failed: {details}")


def _check_async_method(owner: object, name: str, arguments: tuple[str, ...], label: str) -> None:
    method = getattr(owner, name, None)
    if not callable(method):
        raise ConformanceError(f"{label} has no method {name}()")
    if not inspect.iscoroutinefunction(method):
        raise ConformanceError(
            f"{label}.{name}() is not a coroutine function: declare it `async def {name}(self, "
            f"{', '.join(arguments)})` (the engine awaits it)"
        )
    try:
        inspect.signature(method).bind(*arguments)
    except TypeError as exc:
        raise ConformanceError(
            f"{label}.{name}{inspect.signature(method)} cannot be called as {name}({', '.join(arguments)}): {exc}"
        ) from None


async def _cancel_each(
    label: str, calls: Mapping[str, Callable[[], Awaitable[Any]]], limits: Limits
) -> None:
    """Each call, cancelled once it has started, and again under a short timeout: it must end,
    and end cancelled (or with TimeoutError under the timeout), not swallow the cancellation."""
    for method, call in calls.items():
        what = f"{label}.{method}()"
        for turns in (1, 5):
            task = asyncio.ensure_future(call())
            for _ in range(turns):
                await asyncio.sleep(0)
            was_running = task.cancel()
            done, _ = await asyncio.wait({task}, timeout=limits.guard_seconds)
            if not done:
                raise ConformanceError(
                    f"{what} did not end within {limits.guard_seconds:g}s of being cancelled: it must stop when "
                    "cancelled (the engine cancels calls on timeouts, client disconnects and shutdown)"
                )
            if was_running and not task.cancelled():
                error = task.exception()
                if error is None:
                    raise ConformanceError(
                        f"{what} swallowed its cancellation and returned: let asyncio.CancelledError propagate"
                    )
                if not isinstance(error, AgentError):
                    raise ConformanceError(
                        f"{what} turned its cancellation into {type(error).__name__}: {error}; "
                        "let asyncio.CancelledError propagate"
                    )
        try:
            async with asyncio.timeout(limits.guard_seconds):
                async with asyncio.timeout(0.001):
                    await call()
        except TimeoutError:
            continue  # the short timeout fired and the call ended: as it should
        except AgentError:
            continue
        except Exception as exc:
            raise ConformanceError(
                f"{what} under a timeout raised {type(exc).__name__}: {exc}; let asyncio.CancelledError propagate "
                "so that the caller's timeout is reported as one"
            ) from exc


def _councils(backend: AgentBackend, options: Mapping[str, Any], agents: int) -> dict[str, Any]:
    return {ROLE: {"backend": backend.name, "agents": agents, "options": dict(options)}}
