"""The conformance kit's verifications of an agent backend and its agents."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from orchestrator_core.conformance_support import (
    DEFAULT_LIMITS,
    HOSTILE_TEXTS,
    ONE_MEGABYTE,
    PROPOSAL_TEXT,
    ROLE,
    TASK,
    UNKNOWN_OPTION,
    ConformanceError,
    Limits,
    _cancel_each,
    _check_async_method,
    _councils,
    _deliberate,
    _guarded,
    _label,
    _LoopWatch,
    _no_failures,
    _orchestrator,
)
from orchestrator_core.errors import AgentError, OrchestratorError
from orchestrator_core.hookspecs import (
    Agent,
    AgentBackend,
)
from orchestrator_core.models import (
    AgentConfig,
    AgentIdentity,
    AgentReply,
    Critique,
    Proposal,
    Task,
    TaskConstraints,
    TokenUsage,
)

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
