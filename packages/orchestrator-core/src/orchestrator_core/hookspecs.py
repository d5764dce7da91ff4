"""The plugin contract: the hooks a plugin implements and the objects it registers.

A plugin is a module or object with pluggy hookimpls, published under the entry-point
group ``orchestrator``. Each registering hook receives a ``register`` callback and calls it
once per thing it adds::

    from orchestrator_core.hookspecs import hookimpl

    ORCHESTRATOR_PLUGIN_API = ">=1.0,<2"   # optional: the plugin API versions it supports

    @hookimpl
    def register_agents(register):
        register(MyBackend())

The contract, all of it (plugin API version :data:`PLUGIN_API_VERSION`):

Hooks (every one optional; a plugin implements those it needs, and a hookimpl may take
fewer arguments than its hookspec names):

* :func:`register_agents` ``(register, settings)``: register :class:`AgentBackend` objects.
* :func:`register_checks` ``(register, settings)``: register :class:`Check` objects.
* :func:`plugin_settings` ``()``: declare the plugin's settings, ``(section, model)``; the
  validated model reaches the two hooks above as ``settings``
  (:mod:`orchestrator_core.plugin_settings`).
* :func:`orchestrator_startup` ``()`` and :func:`orchestrator_shutdown` ``()``: lifecycle;
  sync, or returning an awaitable the host awaits, bounded by
  ``ORCH_PLUGIN_LIFECYCLE_TIMEOUT_SECONDS``.

Module attribute (optional): ``ORCHESTRATOR_PLUGIN_API``, a PEP 440 specifier set such as
``">=1.0,<2"``, checked against :data:`PLUGIN_API_VERSION` when the plugin loads; a plugin
whose range excludes the host's version is not loaded and is listed as failed with both
versions named. A plugin that declares nothing is accepted.

Objects (every attribute or method the host reads from them):

* :class:`AgentBackend`: ``name``, ``create(config)``; optional: ``probe_endpoint(options)``
  (:class:`ProbingBackend`), ``aclose()`` (:class:`ClosingBackend`).
* :class:`Agent` (what ``create`` returns): ``agent_id``, ``generate``, ``critique``,
  ``revise``; optional: ``select`` (:class:`SelectingAgent`), ``describe``
  (:class:`DescribedAgent`), ``on_timeout`` (:class:`TimeoutAwareAgent`). An agent that plans
  retries reads the time its call has left from
  :func:`orchestrator_core.deadlines.seconds_left` (a function of the core, not a member).
* :class:`Check`: ``name``, ``kind``, ``run(task, proposal)``; optional: ``heavy``
  (:class:`HeavyCheck`), ``blocking`` (:class:`BlockingCheck`), ``timeout_seconds``
  (:class:`BoundedCheck`).

Errors a plugin raises, and what the host makes of them:

* from an agent call: :class:`~orchestrator_core.errors.BackendUnavailable` (the endpoint
  cannot be reached; gRPC ``UNAVAILABLE`` once the council's quorum is lost, and it counts
  towards the endpoint's circuit breaker), :class:`~orchestrator_core.errors.BackendRejected`
  (credentials, model or options refused; retrying cannot help: ``FAILED_PRECONDITION``),
  any other :class:`~orchestrator_core.errors.AgentError` (the call failed; its message is
  the agent's failure in the response and the record). Anything else an agent raises (or a
  reply that is not an :class:`~orchestrator_core.models.AgentReply`) is a plugin bug: the
  call still fails alone, logged with its traceback and counted against the backend
  (``GetStatus`` ``plugin_failures``); a quorum lost to plugin bugs is ``INTERNAL``, naming
  the backend.
* from ``AgentBackend.create``: ``ValueError`` (or ``TypeError``) when the council's options
  are unusable. Whatever ``create`` raises, the council is not ready (``GetStatus``
  ``councils[].ready`` false, the detail naming the backend and the error) and the service
  still starts; exceptions other than ``ValueError``/``TypeError`` are logged with their
  traceback as plugin bugs.
* from ``Check.run``: any exception fails that check for that proposal (score 0, the error
  in its diagnostics); it never fails the deliberation.
* from a hook: the plugin is listed as failed (``orchestrator plugins``, ``GetStatus``
  ``failed_plugins``) with the error, logged with its traceback; the others load. With
  ``ORCH_PLUGINS_STRICT`` every plugin is loaded first, then startup fails naming them all.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import pluggy
from pydantic import BaseModel

from orchestrator_core.models import (
    IDENTITY_SOURCES,
    AgentConfig,
    AgentIdentity,
    AgentReply,
    CheckResult,
    Critique,
    Proposal,
    Task,
)
from orchestrator_core.reachability import ProbingBackend
from orchestrator_core.versions import PLUGIN_API_VERSION

# ProbingBackend (optional ``async probe_endpoint(options) -> Reachability`` of a backend) is
# defined with the prober in orchestrator_core.reachability and is part of this contract: it is
# awaited at startup and every ORCH_ENDPOINT_PROBE_SECONDS per distinct endpoint, bounded by the
# core; it should not raise for a dead endpoint (an exception reads as "unknown").

PROJECT_NAME = "orchestrator"

PLUGIN_API_ATTRIBUTE = "ORCHESTRATOR_PLUGIN_API"
"""The plugin object's (module's) attribute naming the plugin API versions it supports."""

__all__ = [
    "PLUGIN_API_ATTRIBUTE", "PLUGIN_API_VERSION", "PROJECT_NAME", "Agent", "AgentBackend", "BlockingCheck",
    "BoundedCheck", "Check", "ClosingBackend", "DescribedAgent", "HeavyCheck", "LifecycleResult", "ProbingBackend",
    "RegisterAgentBackend", "RegisterCheck", "SelectingAgent", "SettingsDeclaration", "TimeoutAwareAgent",
    "hookimpl", "hookspec", "identity_of",
]

log = logging.getLogger(__name__)

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@runtime_checkable
class Agent(Protocol):
    """One council member, made by :meth:`AgentBackend.create` for one deliberation.

    Required: ``agent_id`` (the id the council gave it in ``AgentConfig.agent_id``; it names
    the agent in responses and records) and the three calls below. Each method is one model
    call; all are async and must be cancellable: the engine bounds each by
    ``ORCH_AGENT_TIMEOUT_SECONDS`` (or the task's tighter bound) and cancels it past that.
    A call fails by raising :class:`~orchestrator_core.errors.AgentError` or a subclass
    (see the module docstring for which status each gives).

    Optional members, read only when present: ``select`` (:class:`SelectingAgent`),
    ``describe`` (:class:`DescribedAgent`), ``on_timeout`` (:class:`TimeoutAwareAgent`).
    """

    agent_id: str

    async def generate(self, task: Task) -> AgentReply:
        """Write a proposal for the task."""
        ...

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        """Critique a peer's proposal against the task's rubric."""
        ...

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        """Revise one's own proposal with the critiques it received."""
        ...


@runtime_checkable
class SelectingAgent(Agent, Protocol):
    """An agent that can also choose a winner among candidates (an ARCHITECT's job). Optional:
    without it the orchestration's winner is the top score."""

    async def select(self, task: Task, candidates: Sequence[Proposal]) -> AgentReply:
        """Choose one candidate and say why; :mod:`orchestrator_core.selection` parses the reply."""
        ...


@runtime_checkable
class DescribedAgent(Agent, Protocol):
    """An agent that can say what it runs. Optional: records show empty fields without it.

    ``describe()`` returns an :class:`~orchestrator_core.models.AgentIdentity`: the model,
    the endpoint (a URL without credentials, or the program of a command backend) and
    ``source``, "options" when the council's options named the model or the endpoint, or
    "settings" when both came from the backend's own settings (``ORCH_<BACKEND>_*``) or
    defaults. It is called once per agent when a deliberation starts, must not block, and
    must never return a secret.
    """

    def describe(self) -> AgentIdentity:
        """What this agent runs and where that came from."""
        ...


@runtime_checkable
class TimeoutAwareAgent(Agent, Protocol):
    """An agent told when the engine's timeout ended one of its calls. Optional.

    ``on_timeout()`` is called synchronously right after the cancelled call, must not block
    and must not raise; the core's circuit-breaker wrapper uses it to count the timeout
    against the endpoint.
    """

    def on_timeout(self) -> None:
        """One of this agent's calls was cancelled by the engine's timeout."""
        ...


def identity_of(agent: object) -> AgentIdentity:
    """``agent.describe()`` when it has one and it works; otherwise an empty identity.

    A plugin's broken ``describe`` is logged and costs only the record's detail, never the
    deliberation.
    """
    describe = getattr(agent, "describe", None)
    if not callable(describe):
        return AgentIdentity()
    try:
        identity = describe()
    except Exception as exc:
        log.warning("%s: describe() failed: %s: %s", getattr(agent, "agent_id", "agent"), type(exc).__name__, exc)
        return AgentIdentity()
    if not isinstance(identity, AgentIdentity):
        return AgentIdentity()
    source = identity.source
    if (
        type(identity) is AgentIdentity
        and type(identity.model) is str
        and type(identity.endpoint) is str
        and type(source) is str
        and (not source or source in IDENTITY_SOURCES)
    ):
        return identity  # already what it would be rebuilt as (immutable, so it can be shared)
    source = source if source in IDENTITY_SOURCES else ""
    return AgentIdentity(model=str(identity.model), endpoint=str(identity.endpoint), source=source)


@runtime_checkable
class AgentBackend(Protocol):
    """A source of agents, e.g. an OpenAI-compatible endpoint. Shared by every council that
    names it (``ORCH_COUNCILS__<ROLE>__BACKEND``) for the life of the service.

    Required: ``name`` (unique among installed backends; councils name it) and ``create``.
    Optional members, read only when present: ``probe_endpoint`` (:class:`ProbingBackend`)
    and ``aclose`` (:class:`ClosingBackend`).
    """

    name: str

    def create(self, config: AgentConfig) -> Agent:
        """Build one agent for ``config`` (its id, role, index, council size and options).

        Called when the service starts (to validate each council's options: an exception
        leaves that council not ready, naming the backend and the error) and then for every
        agent of every deliberation, so it must be cheap and must not block. Raise
        ``ValueError`` (or ``TypeError``) when the options are unusable, with a message that
        says which option and why; anything else it raises is treated as a plugin bug.
        """
        ...


@runtime_checkable
class ClosingBackend(Protocol):
    """A backend holding resources (HTTP connections, a model server) to release. Optional.

    ``aclose()`` is awaited once per shutdown of the host
    (:meth:`orchestrator_core.plugins.PluginHost.shutdown`), after every plugin's
    :func:`orchestrator_shutdown` hook, bounded by ``ORCH_PLUGIN_LIFECYCLE_TIMEOUT_SECONDS``;
    a failure is logged, never fatal. The backend may be used again afterwards (a new
    orchestrator over the same host): it reopens what it needs lazily.
    """

    async def aclose(self) -> None:
        """Release the backend's resources."""
        ...


@runtime_checkable
class Check(Protocol):
    """A machine check of a proposal: policy, lint, dry-run, or any other kind.

    Required: ``name`` (unique among installed checks), ``kind`` (``policy``, ``lint``,
    ``dryrun`` or any other word; ``ORCH_CHECK_WEIGHTS`` weighs results by kind) and ``run``.
    ``run`` is normally ``async``; a synchronous ``run`` is accepted and always run off the
    event loop. Each run is bounded by ``ORCH_CHECK_TIMEOUT_SECONDS`` (or the check's own
    ``timeout_seconds``); an exception or a timeout fails the check for that proposal.

    Optional members, read only when present: ``heavy`` (:class:`HeavyCheck`), ``blocking``
    (:class:`BlockingCheck`), ``timeout_seconds`` (:class:`BoundedCheck`).
    """

    name: str
    kind: str

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        """Judge the proposal; ``score`` in [0, 1], ``passed`` whether it counts as passing."""
        ...


@runtime_checkable
class HeavyCheck(Check, Protocol):
    """A check that takes one of the engine's heavy slots. Optional; default False.

    ``heavy = True``: at most ``ORCH_HEAVY_CHECK_CONCURRENCY`` heavy checks run at once in
    the service (e.g. a dry-run that starts a sandbox); the check's time bound starts when it
    gets its slot.
    """

    heavy: bool


@runtime_checkable
class BlockingCheck(Check, Protocol):
    """A check whose (async) ``run`` blocks the thread. Optional; default False.

    ``blocking = True``: the engine runs it off the event loop, in a worker thread with an
    event loop of its own, so it cannot stall other deliberations. A synchronous ``run`` is
    always run off the loop, whatever this says.
    """

    blocking: bool


@runtime_checkable
class BoundedCheck(Check, Protocol):
    """A check with its own time bound. Optional.

    ``timeout_seconds`` (> 0) bounds each run instead of ``ORCH_CHECK_TIMEOUT_SECONDS``.
    """

    timeout_seconds: float


RegisterAgentBackend = Callable[[AgentBackend], None]
RegisterCheck = Callable[[Check], None]
SettingsDeclaration = tuple[str, type[BaseModel]]
"""What :func:`plugin_settings` returns: the section name and the settings model."""
LifecycleResult = Awaitable[object] | None
"""What a lifecycle hookimpl returns: nothing, or an awaitable the host awaits."""


@hookspec
def register_agents(register: RegisterAgentBackend, settings: Any) -> None:
    """Register agent backends: call ``register(backend)`` once for each.

    ``settings`` is the plugin's validated settings (an instance of the model its
    :func:`plugin_settings` declared) or None when it declares none; a hookimpl that does
    not need it leaves the argument out. Called once per load (again when a plugin is
    unregistered from a collected host). An exception, or registering an object that is
    not an :class:`AgentBackend`, has no name or takes a name another plugin took, fails
    this plugin alone.
    """


@hookspec
def register_checks(register: RegisterCheck, settings: Any) -> None:
    """Register checks: call ``register(check)`` once for each; as :func:`register_agents`."""


@hookspec(firstresult=True)
def plugin_settings() -> SettingsDeclaration | None:
    """Declare the plugin's settings: ``(section, model)``, a pydantic model class.

    The section is read from the ``[plugins.<section>]`` table of the file named by
    ``ORCH_CONFIG_FILE`` and from ``ORCH_PLUGINS__<SECTION>__<FIELD>`` variables (these win,
    value by value), validated when the plugins load; a model that is a pydantic-settings
    ``BaseSettings`` also reads its own environment (e.g. ``ORCH_DRYRUN_*``) for the fields
    the two say nothing about. A value that does not validate stops the service, naming the
    plugin and the field. The instance reaches the plugin's register hooks as ``settings``
    (and :meth:`orchestrator_core.plugins.PluginHost.settings_of`). See
    :mod:`orchestrator_core.plugin_settings`.
    """


@hookspec
def orchestrator_startup() -> LifecycleResult:
    """The service is starting: open what the plugin needs for serving.

    Called once, after every plugin loaded and registered, before the first request; may be
    synchronous or return an awaitable (an ``async def`` hookimpl), which the host awaits
    within ``ORCH_PLUGIN_LIFECYCLE_TIMEOUT_SECONDS``. An exception or a timeout is logged with
    the plugin's name and traceback, the plugin is listed as failed with the error and its
    backends and checks are withdrawn; the service still starts (with ``ORCH_PLUGINS_STRICT``
    it does not, naming every failed plugin).

    The hook runs on the service's event loop: a synchronous hookimpl must return promptly
    (the bound can only cut off an awaitable); put slow work in a coroutine. The gRPC server
    (``orchestrator serve``, ``orchestrator_grpc.server.start_server``) calls it; an embedder
    running the core alone calls :meth:`~orchestrator_core.plugins.PluginHost.startup`, and
    :meth:`~orchestrator_core.orchestrator.Orchestrator.close` runs the shutdown.
    """


@hookspec
def orchestrator_shutdown() -> LifecycleResult:
    """The service is stopping (after in-flight deliberations ended): release resources.

    Sync or awaitable like :func:`orchestrator_startup` and bounded the same way; a failure is
    logged with the plugin's name and traceback and never stops the shutdown. May be called
    without a startup before it (a service that failed to start) and more than once.
    """
