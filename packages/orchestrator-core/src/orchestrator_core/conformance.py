"""The plugin conformance kit: a plugin's agent backends and checks, held to the contract and
run through the real engine.

A plugin author subclasses one class per backend or check in a test module::

    from orchestrator_core.testing import AgentBackendConformance, CheckConformance

    class TestMyBackend(AgentBackendConformance):
        backend = MyBackend()
        options = {"model": "small"}        # options a council would give it

    class TestMyCheck(CheckConformance):
        check = MyCheck()

and pytest runs every conformance test on it: the contract (types, signatures, async
methods, ``create()`` rejecting an unknown option with ValueError), replies and results of
the right type and range, hostile input (a 1 MB task, control characters, unicode, markup),
cancellation and timeouts (a cancelled call must end, and end cancelled), concurrent use,
an event loop never blocked, and deliberations through an :class:`Orchestrator` with a real
council. The tests need no pytest-asyncio: each runs its own event loop.

Each test is a ``verify_*`` coroutine function of this module, usable on its own; a
violation raises :class:`ConformanceError` (an AssertionError) whose message names the
plugin object, what it did and what the contract asks instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from orchestrator_core.errors import AgentError, OrchestratorError
from orchestrator_core.hookspecs import (
    Agent,
    AgentBackend,
    Check,
    RegisterAgentBackend,
    RegisterCheck,
    hookimpl,
)
from orchestrator_core.models import (
    AgentConfig,
    AgentIdentity,
    AgentReply,
    CheckResult,
    Critique,
    DeliberationOutcome,
    Proposal,
    Task,
    TaskConstraints,
    TokenUsage,
)

__all__ = [
    "HOSTILE_TEXTS",
    "UNKNOWN_OPTION",
    "AgentBackendConformance",
    "CheckConformance",
    "ConformanceError",
    "Limits",
    "verify_agent_replies",
    "verify_backend_cancellation",
    "verify_backend_concurrency",
    "verify_backend_contract",
    "verify_backend_hostile_inputs",
    "verify_backend_in_engine",
    "verify_backend_rejects_unknown_options",
    "verify_check_cancellation",
    "verify_check_concurrency",
    "verify_check_contract",
    "verify_check_hostile_inputs",
    "verify_check_in_engine",
    "verify_check_result",
]

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


# -- agent backends ------------------------------------------------------------------------


def _config(index: int = 0, size: int = 1, options: Mapping[str, Any] | None = None) -> AgentConfig:
    return AgentConfig(
        agent_id=f"{ROLE.lower()}-{index + 1}", role=ROLE, index=index, council_size=size, options=dict(options or {})
    )


def _create(backend: AgentBackend, options: Mapping[str, Any], index: int = 0, size: int = 1) -> Agent:
    config = _config(index, size, options)
    try:
        agent = backend.create(config)
    except Exception as exc:
        raise ConformanceError(
            f"{_label(backend)}.create() with the options {dict(options)!r} raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if inspect.isawaitable(agent):
        if inspect.iscoroutine(agent):
            agent.close()
        raise ConformanceError(f"{_label(backend)}.create() returned an awaitable: create() must be a plain def")
    return agent


AGENT_METHODS: Mapping[str, tuple[str, ...]] = {
    "generate": ("task",),
    "critique": ("task", "proposal"),
    "revise": ("task", "proposal", "feedback"),
}
OPTIONAL_AGENT_METHODS: Mapping[str, tuple[str, ...]] = {"select": ("task", "candidates")}


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


async def verify_backend_contract(backend: AgentBackend, options: Mapping[str, Any]) -> None:
    """The backend and the agents it makes have the contract's attributes and signatures."""
    label = _label(backend)
    name = getattr(backend, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise ConformanceError(f"{label} has no name: give the backend a non-empty str attribute `name`")
    if not isinstance(backend, AgentBackend):
        raise ConformanceError(f"{label} is not an AgentBackend: it needs `name` and `create(config)`")
    create = backend.create
    if inspect.iscoroutinefunction(create):
        raise ConformanceError(f"{label}.create() is async: it must be a plain def returning the agent")
    try:
        inspect.signature(create).bind(_config())
    except TypeError as exc:
        raise ConformanceError(
            f"{label}.create{inspect.signature(create)} cannot be called as create(config): {exc}"
        ) from None
    agents = [_create(backend, options, index, 3) for index in range(3)]
    for index, agent in enumerate(agents):
        agent_label = f"{label}: agent {type(agent).__name__}"
        if not isinstance(agent, Agent):
            missing = [m for m in ("agent_id", *AGENT_METHODS) if not hasattr(agent, m)]
            raise ConformanceError(
                f"{agent_label} ({type(agent).__name__}) is not an Agent: it lacks {', '.join(missing)}"
            )
        expected = _config(index, 3).agent_id
        if agent.agent_id != expected:
            raise ConformanceError(
                f"{agent_label} has agent_id {agent.agent_id!r}; it must be the config's agent_id ({expected!r}): "
                "records, critiques and failures name agents by it"
            )
        for method, arguments in AGENT_METHODS.items():
            _check_async_method(agent, method, arguments, agent_label)
        for method, arguments in OPTIONAL_AGENT_METHODS.items():
            if hasattr(agent, method):
                _check_async_method(agent, method, arguments, agent_label)
        describe = getattr(agent, "describe", None)
        if describe is not None:
            if inspect.iscoroutinefunction(describe):
                raise ConformanceError(f"{agent_label}.describe() is async: it must be a plain def that never blocks")
            identity = describe()
            if not isinstance(identity, AgentIdentity):
                raise ConformanceError(
                    f"{agent_label}.describe() returned {type(identity).__name__}, not an AgentIdentity"
                )


async def verify_backend_rejects_unknown_options(backend: AgentBackend, options: Mapping[str, Any]) -> None:
    """``create()`` refuses an option it does not know with a ValueError that names it: the
    service then reports the council as misconfigured, naming the option, instead of running
    agents on settings the operator did not mean."""
    label = _label(backend)
    try:
        backend.create(_config(options={**options, UNKNOWN_OPTION: "x"}))
    except ValueError as exc:
        if UNKNOWN_OPTION not in str(exc):
            raise ConformanceError(
                f"{label}.create() refused the unknown option {UNKNOWN_OPTION!r} with a ValueError that does not "
                f"name it ({exc}): the operator must see which option is wrong"
            ) from None
        return
    except Exception as exc:
        raise ConformanceError(
            f"{label}.create() refused the unknown option {UNKNOWN_OPTION!r} with {type(exc).__name__}: {exc}; "
            "options it cannot use must raise ValueError"
        ) from None
    raise ConformanceError(
        f"{label}.create() accepted the unknown option {UNKNOWN_OPTION!r}: it must raise ValueError naming "
        "every option it does not know (a misspelt option would otherwise be ignored silently)"
    )


def _check_reply(reply: object, what: str) -> None:
    if not isinstance(reply, AgentReply):
        raise ConformanceError(f"{what} returned {type(reply).__name__}, not an AgentReply")
    if not isinstance(reply.text, str):
        raise ConformanceError(f"{what} returned an AgentReply whose text is {type(reply.text).__name__}, not str")
    usage = reply.usage
    if not isinstance(usage, TokenUsage) or not all(
        isinstance(n, int) and n >= 0 for n in (usage.prompt_tokens, usage.completion_tokens)
    ):
        raise ConformanceError(f"{what} returned usage {usage!r}: a TokenUsage of counts that are ints >= 0")


def _calls(agent: Agent, task: Task, content: str) -> dict[str, Callable[[], Awaitable[AgentReply]]]:
    proposal = Proposal(proposal_id="dev-2-v0", author_id="dev-2", role=task.role, content=content)
    critique = Critique(critic_id="dev-2", proposal_id="dev-1-v0", author_id="dev-1", content=content, round=1)
    own = Proposal(proposal_id="dev-1-v0", author_id="dev-1", role=task.role, content=content)
    return {
        "generate": lambda: agent.generate(task),
        "critique": lambda: agent.critique(task, proposal),
        "revise": lambda: agent.revise(task, own, (critique,)),
    }


async def verify_agent_replies(
    backend: AgentBackend, options: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS
) -> None:
    """Each agent method returns an AgentReply with non-empty text and sane usage, without
    blocking the event loop."""
    agent = _create(backend, options)
    for method, call in _calls(agent, TASK, PROPOSAL_TEXT).items():
        what = f"{_label(backend)}: agent.{method}()"
        async with _LoopWatch(limits, what):
            reply = await _guarded(call(), limits, what)
        _check_reply(reply, what)
        if not reply.text.strip():
            raise ConformanceError(f"{what} returned an empty reply: the engine counts that as the agent failing")


async def verify_backend_hostile_inputs(
    backend: AgentBackend, options: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS
) -> None:
    """Every method survives each hostile text (as the task, the proposal and the critique):
    it replies, or raises an AgentError (BackendRejected for a task too long for its model);
    any other exception is a bug the operator cannot act on."""
    agent = _create(backend, options)
    for name, text in HOSTILE_TEXTS.items():
        task = Task(ROLE, text, TaskConstraints(rubric=text, requirements=(text[:1000],)))
        for method, call in _calls(agent, task, text).items():
            what = f"{_label(backend)}: agent.{method}() on {name}"
            try:
                async with _LoopWatch(limits, what):
                    reply = await _guarded(call(), limits, what)
            except AgentError:
                continue
            except ConformanceError:
                raise
            except Exception as exc:
                raise ConformanceError(
                    f"{what} raised {type(exc).__name__}: {exc}; an agent replies, or raises an "
                    "orchestrator_core.errors.AgentError (BackendRejected, BackendUnavailable) saying why it cannot"
                ) from exc
            _check_reply(reply, what)


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


async def verify_backend_cancellation(
    backend: AgentBackend, options: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS
) -> None:
    """Agent calls end when cancelled, and a cancelled deliberation over the backend ends."""
    agent = _create(backend, options)
    await _cancel_each(f"{_label(backend)}: agent", _calls(agent, TASK, PROPOSAL_TEXT), limits)
    async with _orchestrator([backend], [], limits, councils=_councils(backend, options, 3)) as orchestrator:
        from orchestrator_core.orchestrator import DeliberationRequest

        running = asyncio.ensure_future(orchestrator.deliberate(DeliberationRequest(TASK, rounds=1)))
        await asyncio.sleep(0)
        running.cancel()
        done, _ = await asyncio.wait({running}, timeout=limits.guard_seconds)
        if not done:
            raise ConformanceError(
                f"a deliberation over {_label(backend)} did not end within {limits.guard_seconds:g}s of being "
                "cancelled"
            )


def _councils(backend: AgentBackend, options: Mapping[str, Any], agents: int) -> dict[str, Any]:
    return {ROLE: {"backend": backend.name, "agents": agents, "options": dict(options)}}


async def verify_backend_in_engine(
    backend: AgentBackend,
    options: Mapping[str, Any],
    limits: Limits = DEFAULT_LIMITS,
    *,
    agents: int = 3,
    rounds: int = 1,
) -> None:
    """A council of the backend's agents deliberates through the real engine: every agent
    proposes, critiques and revises without a failure, on a plain task and on hostile ones
    (control characters, unicode, markup), and the event loop keeps answering. On a 1 MB task
    the deliberation must end: with a ranking, or an error the service reports (a backend
    may refuse a task too long for its model with an AgentError)."""
    async with _orchestrator(
        [backend], [], limits, councils=_councils(backend, options, agents), quorum=1
    ) as orchestrator:
        for name, text in HOSTILE_TEXTS.items():
            if len(text) < ONE_MEGABYTE:
                continue
            what = f"a deliberation of {agents} {_label(backend)} agents on {name}"
            try:  # a backend may refuse a task too long for its model (an AgentError): it must end
                # (no loop watch here: writing megabytes of records is the service's time, not the
                # plugin's; verify_backend_hostile_inputs watches the plugin's own calls on this text)
                await _deliberate(orchestrator, Task(ROLE, text), rounds, limits, what)
            except ConformanceError as failed:
                if not isinstance(failed.__cause__, OrchestratorError):
                    raise
        tasks = [TASK] + [Task(ROLE, text) for text in HOSTILE_TEXTS.values() if len(text) < ONE_MEGABYTE]
        for task in tasks:
            what = f"a deliberation of {agents} {_label(backend)} agents on {task.description[:40]!r}"
            async with _LoopWatch(limits, what):
                outcome = await _deliberate(orchestrator, task, rounds, limits, what)
            _no_failures(outcome, what)
            if len(outcome.results) != agents:
                raise ConformanceError(f"{what} ranked {len(outcome.results)} proposals, not {agents}")
            if outcome.rounds != rounds:
                raise ConformanceError(f"{what} ran {outcome.rounds} critique rounds, not {rounds}")


async def verify_backend_concurrency(
    backend: AgentBackend,
    options: Mapping[str, Any],
    limits: Limits = DEFAULT_LIMITS,
    *,
    deliberations: int = 4,
    agents: int = 3,
) -> None:
    """Several deliberations at once over one backend (the service shares backends between
    requests): each finishes with its own agents' proposals and no failure."""
    async with _orchestrator(
        [backend], [], limits, councils=_councils(backend, options, agents), quorum=1
    ) as orchestrator:
        tasks = [Task(ROLE, f"Task {n}: write a function f{n}() returning {n}.") for n in range(deliberations)]
        what = f"{deliberations} deliberations at once over {_label(backend)}"
        async with _LoopWatch(limits, what):
            outcomes = await asyncio.gather(*(_deliberate(orchestrator, t, 1, limits, what) for t in tasks))
        for task, outcome in zip(tasks, outcomes, strict=True):
            _no_failures(outcome, what)
            if outcome.task.description != task.description or len(outcome.results) != agents:
                raise ConformanceError(f"{what}: the deliberation of {task.description!r} came back mixed up")


# -- checks --------------------------------------------------------------------------------


def _proposal(content: str, n: int = 1) -> Proposal:
    return Proposal(proposal_id=f"dev-{n}-v0", author_id=f"dev-{n}", role=ROLE, content=content)


def _check_result(check: Check, result: object, what: str) -> CheckResult:
    if not isinstance(result, CheckResult):
        raise ConformanceError(f"{what} returned {type(result).__name__}, not a CheckResult")
    if (result.name, result.kind) != (check.name, check.kind):
        raise ConformanceError(
            f"{what} returned a result named {result.name!r} of kind {result.kind!r}; it must carry the check's own "
            f"name and kind ({check.name!r}, {check.kind!r}): results are reported and weighted by them"
        )
    if not isinstance(result.passed, bool):
        raise ConformanceError(f"{what} returned passed={result.passed!r}: a bool")
    if not isinstance(result.score, int | float) or not math.isfinite(result.score) or not 0 <= result.score <= 1:
        raise ConformanceError(f"{what} returned score {result.score!r}: a number in [0, 1]")
    if not isinstance(result.diagnostics, tuple) or not all(isinstance(d, str) for d in result.diagnostics):
        raise ConformanceError(f"{what} returned diagnostics {result.diagnostics!r}: a tuple of str")
    duration = result.duration_seconds
    if not isinstance(duration, int | float) or not math.isfinite(duration) or duration < 0:
        raise ConformanceError(f"{what} returned duration_seconds {duration!r}: a finite number >= 0")
    return result


def _runs_off_loop(check: Check) -> bool:
    """As the engine decides: ``blocking = True``, or a ``run`` that is a plain def, runs in a
    worker thread (:class:`~orchestrator_core.hookspecs.BlockingCheck`)."""
    return getattr(check, "blocking", False) is True or not inspect.iscoroutinefunction(check.run)


async def _invoke(check: Check, task: Task, proposal: Proposal) -> object:
    """One run of the check, where the engine would run it: on the loop, or in a thread."""
    if not _runs_off_loop(check):
        return await check.run(task, proposal)

    def in_thread() -> object:
        result: object = check.run(task, proposal)
        if inspect.isawaitable(result):
            awaitable = result

            async def wait() -> object:
                return await awaitable

            return asyncio.run(wait())
        return result

    return await asyncio.to_thread(in_thread)


async def _run_check(check: Check, task: Task, proposal: Proposal, limits: Limits, what: str) -> CheckResult:
    try:
        async with _LoopWatch(limits, what):
            result = await _guarded(_invoke(check, task, proposal), limits, what)
    except ConformanceError:
        raise
    except Exception as exc:
        raise ConformanceError(
            f"{what} raised {type(exc).__name__}: {exc}; a check judges every proposal it is given and says what "
            "it found in a CheckResult (passed=False and a diagnostic for what it cannot judge)"
        ) from exc
    return _check_result(check, result, what)


async def verify_check_contract(check: Check) -> None:
    """The check has a name, a kind and a ``run(task, proposal)``: ``async def``, or a plain
    def that the engine runs in a worker thread (as it does any check with ``blocking = True``)."""
    label = _label(check)
    for attribute in ("name", "kind"):
        value = getattr(check, attribute, None)
        if not isinstance(value, str) or not value.strip():
            raise ConformanceError(
                f"{label} has no {attribute}: give the check a non-empty str attribute {attribute!r}"
            )
    if not isinstance(check, Check):
        raise ConformanceError(f"{label} is not a Check: it needs `name`, `kind` and `async def run(task, proposal)`")
    if inspect.iscoroutinefunction(check.run):
        _check_async_method(check, "run", ("task", "proposal"), label)
        return
    # a plain def run is a blocking check: the engine runs it in a worker thread
    try:
        inspect.signature(check.run).bind("task", "proposal")
    except TypeError as exc:
        raise ConformanceError(
            f"{label}.run{inspect.signature(check.run)} cannot be called as run(task, proposal): {exc}"
        ) from None


async def verify_check_result(check: Check, limits: Limits = DEFAULT_LIMITS) -> None:
    """``run()`` returns a CheckResult with the check's name and kind, a bool verdict, a
    score in [0, 1] and str diagnostics, without blocking the event loop."""
    await _run_check(check, TASK, _proposal(PROPOSAL_TEXT), limits, f"{_label(check)}.run()")


async def verify_check_hostile_inputs(check: Check, limits: Limits = DEFAULT_LIMITS) -> None:
    """``run()`` judges each hostile text (as the proposal and as the task) and an empty
    proposal, returning a valid result: a client controls all of them."""
    cases = {**HOSTILE_TEXTS, "an empty proposal": ""}
    for name, text in cases.items():
        task = Task(ROLE, text or TASK.description, TaskConstraints(rubric=text))
        await _run_check(check, task, _proposal(text), limits, f"{_label(check)}.run() on {name}")


async def verify_check_concurrency(check: Check, limits: Limits = DEFAULT_LIMITS, *, runs: int = 8) -> None:
    """``runs`` runs at once (the engine checks every proposal concurrently), each valid."""
    what = f"{runs} runs at once of {_label(check)}"
    proposals = [_proposal(PROPOSAL_TEXT.replace("add", f"add{n}"), n) for n in range(1, runs + 1)]
    try:
        async with _LoopWatch(limits, what):
            results = await _guarded(asyncio.gather(*(_invoke(check, TASK, p) for p in proposals)), limits, what)
    except ConformanceError:
        raise
    except Exception as exc:
        raise ConformanceError(f"{what}: one raised {type(exc).__name__}: {exc}") from exc
    for result in results:
        _check_result(check, result, what)


async def verify_check_cancellation(check: Check, limits: Limits = DEFAULT_LIMITS) -> None:
    """A run ends when cancelled (a timed-out check, a cancelled deliberation)."""
    await _cancel_each(_label(check), {"run": lambda: _invoke(check, TASK, _proposal(PROPOSAL_TEXT))}, limits)


async def verify_check_in_engine(check: Check, limits: Limits = DEFAULT_LIMITS, *, agents: int = 3) -> None:
    """The check judges every proposal of a real deliberation (scripted agents): each ranked
    proposal has its result, and none is the engine's report of an error or a timeout."""
    from orchestrator_core.testing import ScriptedBackend

    backend = ScriptedBackend(name="conformance-scripted", defaults={"proposal": PROPOSAL_TEXT})
    async with _orchestrator(
        [backend], [check], limits, councils=_councils(backend, {}, agents), check_timeout_seconds=limits.guard_seconds
    ) as orchestrator:
        what = f"a deliberation checked by {_label(check)}"
        async with _LoopWatch(limits, what):
            outcome = await _deliberate(orchestrator, TASK, 1, limits, what)
        _no_failures(outcome, what)
        for ranked in outcome.results:
            mine = [r for r in ranked.checks if r.name == check.name]
            if len(mine) != 1:
                raise ConformanceError(
                    f"{what}: proposal {ranked.proposal.proposal_id} has {len(mine)} results named {check.name!r}"
                )
            reported = " ".join(mine[0].diagnostics)
            if "check error" in reported or "timed out" in reported:
                raise ConformanceError(f"{what}: the engine reported {reported!r} for {ranked.proposal.proposal_id}")


# -- pytest classes ------------------------------------------------------------------------


def _run(coroutine: Awaitable[None]) -> None:
    async def main() -> None:
        await coroutine

    asyncio.run(main())


class AgentBackendConformance:
    """Conformance tests of one agent backend; subclass it as ``Test...`` and set ``backend``.

    ``options`` are what a council would pass (``ORCH_COUNCILS__<ROLE>__OPTIONS``); override
    :meth:`make_backend` to build a fresh backend per test. ``limits`` bounds the waits.
    """

    backend: ClassVar[AgentBackend | None] = None
    options: ClassVar[Mapping[str, Any]] = {}
    limits: ClassVar[Limits] = DEFAULT_LIMITS

    def make_backend(self) -> AgentBackend:
        if self.backend is None:
            raise ConformanceError(f"{type(self).__name__} sets no `backend` (or override make_backend())")
        return self.backend

    def test_backend_contract(self) -> None:
        _run(verify_backend_contract(self.make_backend(), self.options))

    def test_create_rejects_unknown_options(self) -> None:
        _run(verify_backend_rejects_unknown_options(self.make_backend(), self.options))

    def test_agent_replies(self) -> None:
        _run(verify_agent_replies(self.make_backend(), self.options, self.limits))

    def test_hostile_inputs(self) -> None:
        _run(verify_backend_hostile_inputs(self.make_backend(), self.options, self.limits))

    def test_cancellation_and_timeouts(self) -> None:
        _run(verify_backend_cancellation(self.make_backend(), self.options, self.limits))

    def test_deliberates_through_the_engine(self) -> None:
        _run(verify_backend_in_engine(self.make_backend(), self.options, self.limits))

    def test_concurrent_deliberations(self) -> None:
        _run(verify_backend_concurrency(self.make_backend(), self.options, self.limits))


class CheckConformance:
    """Conformance tests of one check; subclass it as ``Test...`` and set ``check`` (or
    override :meth:`make_check`)."""

    check: ClassVar[Check | None] = None
    limits: ClassVar[Limits] = DEFAULT_LIMITS

    def make_check(self) -> Check:
        if self.check is None:
            raise ConformanceError(f"{type(self).__name__} sets no `check` (or override make_check())")
        return self.check

    def test_check_contract(self) -> None:
        _run(verify_check_contract(self.make_check()))

    def test_check_result(self) -> None:
        _run(verify_check_result(self.make_check(), self.limits))

    def test_hostile_inputs(self) -> None:
        _run(verify_check_hostile_inputs(self.make_check(), self.limits))

    def test_concurrent_runs(self) -> None:
        _run(verify_check_concurrency(self.make_check(), self.limits))

    def test_cancellation_and_timeouts(self) -> None:
        _run(verify_check_cancellation(self.make_check(), self.limits))

    def test_checks_a_deliberation_through_the_engine(self) -> None:
        _run(verify_check_in_engine(self.make_check(), self.limits))
