"""Plugin discovery: entry points of group ``orchestrator``, one at a time.

A plugin that fails to import, whose hookimpls do not match the contract, or whose hooks
raise or register something unusable is skipped and recorded with its name, version and
error; the service still starts. With ``strict`` such a failure raises
:class:`PluginLoadError` instead, for plugin authors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from orchestrator_core import hookspecs
from orchestrator_core.errors import OrchestratorError
from orchestrator_core.hookspecs import PROJECT_NAME, AgentBackend, Check
from orchestrator_core.settings import Settings

ENTRY_POINT_GROUP = "orchestrator"
HOOK_NAMES = ("register_agents", "register_checks")

log = logging.getLogger(__name__)


class PluginLoadError(OrchestratorError):
    """A plugin failed to load while strict loading was asked for."""


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    hooks: tuple[str, ...]
    agents: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()


@dataclass(frozen=True)
class FailedPlugin:
    name: str
    version: str
    error: str


@dataclass
class _Registered:
    version: str
    agents: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


class PluginHost:
    """One plugin manager, and what its plugins registered, attributed to each plugin."""

    def __init__(self) -> None:
        self._manager = pluggy.PluginManager(PROJECT_NAME)
        self._manager.add_hookspecs(hookspecs)
        self._registered: dict[str, _Registered] = {}
        self._failed: list[FailedPlugin] = []
        self._backends: dict[str, AgentBackend] = {}
        self._checks: dict[str, Check] = {}
        self._strict = False

    # -- loading --------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None, version: str = "") -> str:
        """Register a plugin object (a module or any object with hookimpls); returns its name."""
        plugin_name = self._manager.register(plugin, name=name)
        if plugin_name is None:
            raise PluginLoadError(f"plugin {name or plugin!r} is blocked or already registered")
        unknown = [
            impl for impl in self._hook_names_of(plugin_name) if impl not in HOOK_NAMES
        ]
        if unknown:
            self._manager.unregister(name=plugin_name)
            raise pluggy.PluginValidationError(
                plugin, f"hooks {', '.join(unknown)} are not part of the orchestrator plugin contract"
            )
        self._registered[plugin_name] = _Registered(version=version)
        return plugin_name

    def unregister(self, name: str) -> None:
        self._manager.unregister(name=name)
        self._registered.pop(name, None)
        self._collected()

    def load_entry_points(
        self,
        *,
        enabled: Sequence[str] | None = None,
        disabled: Sequence[str] = (),
        strict: bool = False,
    ) -> None:
        """Load every installed plugin the allow and deny lists admit, each on its own."""
        self._strict = strict
        for name in disabled:
            self._manager.set_blocked(name)
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in disabled or (enabled is not None and entry_point.name not in enabled):
                log.info("plugin %s is not enabled; skipped", entry_point.name)
                continue
            self._load_one(entry_point)

    def _load_one(self, entry_point: EntryPoint) -> None:
        version = entry_point.dist.version if entry_point.dist else ""
        try:
            self.register(entry_point.load(), name=entry_point.name, version=version)
        except Exception as exc:
            self._fail(entry_point.name, version, exc)

    def collect(self) -> None:
        """Call every plugin's hooks, keeping what each registered."""
        self._backends.clear()
        self._checks.clear()
        for registered in self._registered.values():
            registered.agents.clear()
            registered.checks.clear()
        self._call_hook("register_agents", self._backends, AgentBackend, "agents")
        self._call_hook("register_checks", self._checks, Check, "checks")

    def _collected(self) -> None:
        if self._backends or self._checks:
            self.collect()

    def _call_hook(self, hook_name: str, target: dict[str, Any], kind: type, attribute: str) -> None:
        caller = getattr(self._manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            plugin_name = impl.plugin_name
            if plugin_name not in self._registered:
                continue
            added: dict[str, Any] = {}
            try:
                impl.function(register=self._registrar(added, kind, target, hook_name))
            except Exception as exc:
                self._fail(plugin_name, self._registered[plugin_name].version, exc)
                continue
            target.update(added)
            getattr(self._registered[plugin_name], attribute).extend(added)

    @staticmethod
    def _registrar(
        added: dict[str, Any], kind: type, existing: Mapping[str, Any], hook_name: str
    ) -> Callable[[Any], None]:
        def register(thing: Any) -> None:
            if not isinstance(thing, kind):
                raise TypeError(f"{hook_name} registered {thing!r}, which is not a {kind.__name__}")
            name = getattr(thing, "name", "")
            if not isinstance(name, str) or not name:
                raise TypeError(f"{hook_name} registered {thing!r} without a name")
            if name in existing or name in added:
                raise ValueError(f"{hook_name} registered {name!r}, which another plugin registered already")
            added[name] = thing

        return register

    def _fail(self, name: str, version: str, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        log.error("plugin %s %s failed to load: %s", name, version or "(unknown version)", error)
        if self._manager.has_plugin(name):
            self._manager.unregister(name=name)
        self._registered.pop(name, None)
        self._failed.append(FailedPlugin(name=name, version=version, error=error))
        if self._strict:
            raise PluginLoadError(f"plugin {name} {version} failed to load: {error}") from exc

    def _hook_names_of(self, plugin_name: str) -> list[str]:
        plugin = self._manager.get_plugin(plugin_name)
        callers = self._manager.get_hookcallers(plugin) or []
        return [caller.name for caller in callers]

    # -- what was loaded ------------------------------------------------------

    async def close_backends(self) -> None:
        """Let each backend that holds resources (connections, an in-process model server)
        release them through its optional ``aclose()``; one that fails is logged, not fatal."""
        for name, backend in self._backends.items():
            aclose = getattr(backend, "aclose", None)
            if not callable(aclose):
                continue
            try:
                await aclose()
            except Exception as exc:
                log.warning("backend %s did not close cleanly: %s: %s", name, type(exc).__name__, exc)

    @property
    def backends(self) -> Mapping[str, AgentBackend]:
        return dict(self._backends)

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(self._checks.values())

    @property
    def plugins(self) -> tuple[PluginInfo, ...]:
        return tuple(
            PluginInfo(
                name=name,
                version=registered.version,
                hooks=tuple(sorted(self._hook_names_of(name))),
                agents=tuple(registered.agents),
                checks=tuple(registered.checks),
            )
            for name, registered in sorted(self._registered.items())
        )

    @property
    def failed(self) -> tuple[FailedPlugin, ...]:
        return tuple(self._failed)


def load_plugins(settings: Settings, extra: Iterable[object] = ()) -> PluginHost:
    """Load the installed plugins as the settings say, plus any plugin objects given."""
    host = PluginHost()
    host.load_entry_points(
        enabled=settings.plugins_enabled,
        disabled=settings.plugins_disabled,
        strict=settings.plugins_strict,
    )
    for plugin in extra:
        host.register(plugin)
    host.collect()
    return host
