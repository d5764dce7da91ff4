"""Test doubles and pytest helpers for plugin authors and Orchestrator's own tests.

Everything here is a test double, named ``Scripted*``: replies come from a script, never
from a model. The ``orchestrator_plugins`` fixture registers plugin objects on a
:class:`~orchestrator_core.plugins.PluginHost` for one test and removes them afterwards.
This module is a pytest plugin (entry point ``pytest11``), so the fixture is available
wherever orchestrator-core is installed.

The conformance kit (:mod:`orchestrator_core.conformance`) is exported here: a plugin's
tests subclass :class:`AgentBackendConformance` or :class:`CheckConformance` to run its
backends and checks through the contract and the real engine::

    class TestMyBackend(AgentBackendConformance):
        backend = MyBackend()

or, with no test code at all, for an installed plugin's entry point::

    pytest --orchestrator-conformance=my-plugin [--orchestrator-conformance-options='{"model": "m"}']

which runs every conformance test on each backend and check that entry point registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from orchestrator_core.conformance import (
    AgentBackendConformance,
    CheckConformance,
    ConformanceError,
    Limits,
)
from orchestrator_core.hookspecs import AgentBackend, Check, RegisterAgentBackend, RegisterCheck, hookimpl
from orchestrator_core.models import (
    AgentConfig,
    AgentIdentity,
    AgentReply,
    CheckResult,
    Critique,
    Phase,
    Proposal,
    Task,
    TokenUsage,
)
from orchestrator_core.plugins import PluginHost
from orchestrator_core.telemetry import AgentCallScope, CheckScope, DeliberationScope, PhaseScope, Telemetry

T = TypeVar("T")

__all__ = [
    "AgentBackendConformance",
    "CheckConformance",
    "ConcurrencyProbe",
    "ConformanceError",
    "Limits",
    "PluginRegistrar",
    "RecordingTelemetry",
    "ScriptedAgent",
    "ScriptedBackend",
    "ScriptedCheck",
    "ScriptedPlugin",
    "orchestrator_plugins",
    "pytest_addoption",
    "pytest_collection_modifyitems",
]

SCRIPTED_USAGE = TokenUsage(prompt_tokens=10, completion_tokens=5)


class ConcurrencyProbe:
    """Counts agent calls in flight per phase; with ``parties`` each call also waits at a
    barrier until that many calls of its phase are in flight, so a test proves the calls of
    a phase run at once (sequential calls would never pass the barrier)."""

    def __init__(self, parties: int = 0) -> None:
        self.parties = parties
        self.in_flight: Counter[Phase] = Counter()
        self.max_in_flight: Counter[Phase] = Counter()
        self.calls: Counter[Phase] = Counter()
        self.cancelled: Counter[Phase] = Counter()
        self._barriers: dict[Phase, asyncio.Barrier] = {}

    async def enter(self, phase: Phase) -> None:
        self.calls[phase] += 1
        self.in_flight[phase] += 1
        self.max_in_flight[phase] = max(self.max_in_flight[phase], self.in_flight[phase])
        if self.parties:
            barrier = self._barriers.setdefault(phase, asyncio.Barrier(self.parties))
            await barrier.wait()

    def leave(self, phase: Phase) -> None:
        self.in_flight[phase] -= 1


ReplyScript = str | Callable[..., str]


@dataclass
class ScriptedAgent:
    """A test double: an agent whose replies follow a script.

    ``fail_in`` maps a phase to the exception the agent raises there; ``hang_in`` names
    phases where the call never returns (until cancelled). By default the proposal names
    the agent and the task, a revision returns the proposal's content unchanged, and a
    selection chooses candidate ``choice``. ``model``, when set, is the model the agent
    describes itself as running and names on its replies; ``truncated`` marks every reply
    as cut off at the reply-length limit.
    """

    agent_id: str
    proposal: ReplyScript | None = None
    critique_text: ReplyScript | None = None
    revision: ReplyScript | None = None
    choice: int = 1
    rationale: str = "scripted choice"
    delay_seconds: float = 0.0
    fail_in: Mapping[Phase, BaseException] = field(default_factory=dict)
    hang_in: frozenset[Phase] = frozenset()
    usage: TokenUsage = SCRIPTED_USAGE
    probe: ConcurrencyProbe | None = None
    calls: list[Phase] = field(default_factory=list)
    model: str = ""
    truncated: bool = False

    def describe(self) -> AgentIdentity:
        return AgentIdentity(model=self.model, source="options" if self.model else "")

    async def generate(self, task: Task) -> AgentReply:
        default = f"Proposal by {self.agent_id} for: {task.description}"
        return await self._reply(Phase.GENERATE, self.proposal, default, task)

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        default = f"Critique by {self.agent_id} of {proposal.proposal_id}"
        return await self._reply(Phase.CRITIQUE, self.critique_text, default, task, proposal)

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        return await self._reply(Phase.REVISE, self.revision, proposal.content, task, proposal, feedback)

    async def select(self, task: Task, candidates: Sequence[Proposal]) -> AgentReply:
        text = json.dumps({"choice": self.choice, "rationale": self.rationale})
        return await self._reply(Phase.SELECT, None, text, task, candidates)

    async def _reply(self, phase: Phase, script: ReplyScript | None, default: str, *args: object) -> AgentReply:
        self.calls.append(phase)
        if self.probe is not None:
            await self.probe.enter(phase)
        try:
            if self.delay_seconds:
                await asyncio.sleep(self.delay_seconds)
            if phase in self.hang_in:
                await asyncio.Event().wait()
            if phase in self.fail_in:
                raise self.fail_in[phase]
            text = script(*args) if callable(script) else (script if script is not None else default)
            return AgentReply(text=text, usage=self.usage, truncated=self.truncated, model=self.model)
        except asyncio.CancelledError:
            if self.probe is not None:
                self.probe.cancelled[phase] += 1
            raise
        finally:
            if self.probe is not None:
                self.probe.leave(phase)


@dataclass
class ScriptedBackend:
    """A test double backend: builds :class:`ScriptedAgent` s.

    ``agents`` maps a council position to keyword arguments of ScriptedAgent for that
    agent (e.g. ``{1: {"fail_in": {Phase.GENERATE: RuntimeError("down")}}}``); every
    agent gets ``defaults`` first. ``created`` keeps every agent made, for assertions.
    """

    name: str = "scripted"
    defaults: Mapping[str, object] = field(default_factory=dict)
    agents: Mapping[int, Mapping[str, object]] = field(default_factory=dict)
    created: list[ScriptedAgent] = field(default_factory=list)
    configs: list[AgentConfig] = field(default_factory=list)

    def create(self, config: AgentConfig) -> ScriptedAgent:
        unknown = set(config.options) - {"model", "temperature"}
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}")
        configured = {"model": config.options["model"]} if "model" in config.options else {}
        options = {**configured, **self.defaults, **self.agents.get(config.index, {})}
        agent = ScriptedAgent(agent_id=config.agent_id, **options)
        self.created.append(agent)
        self.configs.append(config)
        return agent


@dataclass
class ScriptedCheck:
    """A test double check: scores each proposal with ``score_of(proposal)``."""

    name: str = "scripted-check"
    kind: str = "lint"
    score_of: Callable[[Proposal], float] = lambda proposal: 1.0
    heavy: bool = False
    probe: ConcurrencyProbe | None = None

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        started = time.monotonic()
        await asyncio.sleep(0)
        score = self.score_of(proposal)
        return CheckResult(
            name=self.name,
            kind=self.kind,
            passed=score >= 0.5,
            score=score,
            diagnostics=(f"scripted score {score:.2f}",),
            duration_seconds=time.monotonic() - started,
        )


class ScriptedPlugin:
    """A plugin object registering the given backends and checks."""

    def __init__(self, *items: AgentBackend | Check) -> None:
        self.items = items

    @hookimpl
    def register_agents(self, register: RegisterAgentBackend) -> None:
        for item in self.items:
            if isinstance(item, AgentBackend):
                register(item)

    @hookimpl
    def register_checks(self, register: RegisterCheck) -> None:
        for item in self.items:
            if isinstance(item, Check) and not isinstance(item, AgentBackend):
                register(item)


class PluginRegistrar:
    """Registers plugin objects on a host; :meth:`unregister_all` removes them."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host
        self._names: list[str] = []

    def register(self, plugin: object, name: str | None = None) -> str:
        plugin_name = self.host.register(plugin, name=name)
        self._names.append(plugin_name)
        self.host.collect()
        return plugin_name

    def unregister_all(self) -> None:
        while self._names:
            self.host.unregister(self._names.pop())
        self.host.collect()


@pytest.fixture
def orchestrator_plugins() -> Iterator[PluginRegistrar]:
    """A plugin host for one test: ``orchestrator_plugins.register(plugin)``; removed after."""
    registrar = PluginRegistrar(PluginHost())
    yield registrar
    registrar.unregister_all()


# -- pytest --orchestrator-conformance=ENTRY_POINT -------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("orchestrator", "Orchestrator plugin conformance")
    group.addoption(
        "--orchestrator-conformance", action="append", default=[], metavar="ENTRY_POINT",
        help="run the conformance kit on every agent backend and check that the installed plugin ENTRY_POINT "
        "(group 'orchestrator') registers; repeat or separate names with commas",
    )
    group.addoption(
        "--orchestrator-conformance-options", default="{}", metavar="JSON",
        help="the options (a JSON object) the backends' agents are created with, as a council would give them",
    )


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    names = [name.strip() for value in config.getoption("orchestrator_conformance") or ()
             for name in str(value).split(",") if name.strip()]
    if not names:
        return
    try:
        options = json.loads(config.getoption("orchestrator_conformance_options"))
    except json.JSONDecodeError as exc:
        raise pytest.UsageError(f"--orchestrator-conformance-options is not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise pytest.UsageError("--orchestrator-conformance-options must be a JSON object")
    for name in names:
        items.extend(_conformance_items(session, name, options))


class ConformanceItem(pytest.Item):
    """One conformance verification of one registered object, as a test item."""

    def __init__(self, *, run: Callable[[], object], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._run = run

    def runtest(self) -> None:
        outcome = self._run()
        if asyncio.iscoroutine(outcome):
            asyncio.run(outcome)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: object = None) -> str:
        if isinstance(excinfo.value, ConformanceError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[os.PathLike[str] | str, int | None, str]:
        return self.path, None, self.name


def _conformance_items(
    session: pytest.Session, entry_point: str, options: Mapping[str, object]
) -> list[ConformanceItem]:
    from functools import partial
    from importlib.metadata import entry_points

    from orchestrator_core import conformance
    from orchestrator_core.plugins import ENTRY_POINT_GROUP

    def item(name: str, run: Callable[[], object]) -> ConformanceItem:
        return ConformanceItem.from_parent(session, name=f"orchestrator-conformance[{entry_point}]::{name}", run=run)

    def fail(message: str) -> Callable[[], object]:
        def run() -> object:
            raise ConformanceError(message)

        return run

    if not any(e.name == entry_point for e in entry_points(group=ENTRY_POINT_GROUP)):
        return [item("load", fail(f"no installed plugin has the entry point {entry_point!r} (group "
                                  f"{ENTRY_POINT_GROUP!r}); pip install the plugin first"))]
    host = PluginHost()
    host.load_entry_points(enabled=[entry_point])
    host.collect()
    if host.failed:
        return [item("load", fail(f"plugin {entry_point} failed to load: {host.failed[0].error}"))]
    found: list[ConformanceItem] = [item("load", lambda: None)]
    for backend in host.backends.values():
        for verify in (conformance.verify_backend_contract, conformance.verify_backend_rejects_unknown_options,
                       conformance.verify_agent_replies, conformance.verify_backend_hostile_inputs,
                       conformance.verify_backend_cancellation, conformance.verify_backend_in_engine,
                       conformance.verify_backend_concurrency):
            found.append(item(f"backend {backend.name}::{verify.__name__}", partial(verify, backend, options)))
    for check in host.checks:
        for check_verify in (conformance.verify_check_contract, conformance.verify_check_result,
                             conformance.verify_check_hostile_inputs, conformance.verify_check_concurrency,
                             conformance.verify_check_cancellation, conformance.verify_check_in_engine):
            found.append(item(f"check {check.name}::{check_verify.__name__}", partial(check_verify, check)))
    return found


class RecordingTelemetry(Telemetry):
    """A test double observer: keeps every scope as it closed (its fields then final), in
    ``closed``, with the scope that enclosed it when it opened (``parents``: by ``id``)."""

    def __init__(self) -> None:
        self.closed: list[DeliberationScope | PhaseScope | AgentCallScope | CheckScope] = []
        self.parents: dict[int, object | None] = {}
        self._current: contextvars.ContextVar[object | None] = contextvars.ContextVar("scope", default=None)

    def of(self, kind: type[T]) -> list[T]:
        """The closed scopes of one kind, in the order they closed."""
        return [scope for scope in self.closed if isinstance(scope, kind)]

    def deliberation(self, scope: DeliberationScope) -> AbstractContextManager[None]:
        return self._entered(scope)

    def phase(self, scope: PhaseScope) -> AbstractContextManager[None]:
        return self._entered(scope)

    def agent_call(self, scope: AgentCallScope) -> AbstractContextManager[None]:
        return self._entered(scope)

    def check(self, scope: CheckScope) -> AbstractContextManager[None]:
        return self._entered(scope)

    @contextlib.contextmanager
    def _entered(self, scope: DeliberationScope | PhaseScope | AgentCallScope | CheckScope) -> Iterator[None]:
        self.parents[id(scope)] = self._current.get()
        token = self._current.set(scope)
        try:
            yield
        finally:
            self._current.reset(token)
            self.closed.append(scope)
