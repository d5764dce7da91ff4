"""Plugin discovery: entry points of group ``orchestrator``, one at a time.

A plugin that fails to import, declares a plugin API range that excludes this host's
(:data:`~orchestrator_core.hookspecs.PLUGIN_API_VERSION`), has hookimpls that do not match
the contract, or whose hooks raise or register something unusable is skipped and recorded
with its name, version and error (logged with its traceback); the others load and the
service still starts. With ``strict`` every plugin is still tried, and then
:class:`PluginLoadError` names every one that failed, for plugin authors and CI.

Hooks are called through pluggy's hook callers, one plugin at a time (a subset caller
without the other plugins' implementations; their hook wrappers stay), so hook wrappers and
call monitoring see every call while a failing plugin fails alone.

Plugin settings (:mod:`orchestrator_core.plugin_settings`) are validated when the hooks are
collected; an invalid value raises :class:`~orchestrator_core.plugin_settings.PluginSettingsError`
whatever ``strict`` says: it is the operator's configuration, not the plugin, that is wrong.

The lifecycle hooks are run by :meth:`PluginHost.startup` and :meth:`PluginHost.shutdown`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy
from pydantic import BaseModel

from orchestrator_core import hookspecs
from orchestrator_core.errors import OrchestratorError
from orchestrator_core.hookspecs import (
    PROJECT_NAME,
    AgentBackend,
    Check,
)
from orchestrator_core.plugin_api import IncompatiblePlugin, check_plugin_api
from orchestrator_core.plugin_settings import PluginSettingsError, valid_section_name, validate_section
from orchestrator_core.settings import Settings

ENTRY_POINT_GROUP = "orchestrator"
HOOK_NAMES = (
    "register_agents",
    "register_checks",
    "plugin_settings",
    "orchestrator_startup",
    "orchestrator_shutdown",
)
DEFAULT_LIFECYCLE_TIMEOUT_SECONDS = 10.0

__all__ = [
    "ENTRY_POINT_GROUP", "FailedPlugin", "IncompatiblePlugin", "PluginHost", "PluginInfo", "PluginLoadError",
    "check_plugin_api", "load_plugins",
]

log = logging.getLogger(__name__)


class PluginLoadError(OrchestratorError):
    """Plugins failed while strict loading was asked for; the message names every one."""


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
    settings: BaseModel | None = None


class PluginHost:
    """One plugin manager, and what its plugins registered, attributed to each plugin.

    Args:
      plugin_config: the plugins' settings sections, ``{section: values}``, as the core's
        ``Settings.plugins`` holds them (file and ``ORCH_PLUGINS__*``); none by default.
      lifecycle_timeout_seconds: bound of each plugin's lifecycle hook and each backend's
        ``aclose()``.
      strict: :meth:`startup` raises when a plugin failed (``ORCH_PLUGINS_STRICT``).
    """

    def __init__(
        self,
        plugin_config: Mapping[str, Any] | None = None,
        *,
        lifecycle_timeout_seconds: float = DEFAULT_LIFECYCLE_TIMEOUT_SECONDS,
        strict: bool = False,
    ) -> None:
        self._manager = pluggy.PluginManager(PROJECT_NAME)
        self._manager.add_hookspecs(hookspecs)
        self._registered: dict[str, _Registered] = {}
        self._failed: list[FailedPlugin] = []
        self._backends: dict[str, AgentBackend] = {}
        self._checks: dict[str, Check] = {}
        self._strict = strict
        self._config: Mapping[str, Any] = dict(plugin_config or {})
        self.lifecycle_timeout_seconds = lifecycle_timeout_seconds

    @property
    def manager(self) -> pluggy.PluginManager:
        """The pluggy manager: for hook wrappers and call monitoring (``add_hookcall_monitoring``)."""
        return self._manager

    # -- loading --------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None, version: str = "") -> str:
        """Register a plugin object (a module or any object with hookimpls); returns its name.

        Raises :class:`IncompatiblePlugin` when its declared plugin API range excludes this
        host's, ``pluggy.PluginValidationError`` when its hookimpls do not match the contract.
        """
        check_plugin_api(plugin)
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
        """Load every installed plugin the allow and deny lists admit, each on its own.

        With ``strict``, after trying them all, raise :class:`PluginLoadError` naming every
        plugin that failed (so far); :func:`load_plugins` checks again after collecting.
        """
        self._strict = self._strict or strict
        for name in disabled:
            self._manager.set_blocked(name)
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in disabled or (enabled is not None and entry_point.name not in enabled):
                log.info("plugin %s is not enabled; skipped", entry_point.name)
                continue
            self._load_one(entry_point)
        if strict:
            self.raise_if_failed()

    def _load_one(self, entry_point: EntryPoint) -> None:
        version = entry_point.dist.version if entry_point.dist else ""
        try:
            self.register(entry_point.load(), name=entry_point.name, version=version)
        except Exception as exc:
            self._fail(entry_point.name, version, exc)

    def raise_if_failed(self) -> None:
        """Raise :class:`PluginLoadError` naming every failed plugin, if any failed."""
        if self._failed:
            raise PluginLoadError(
                f"{len(self._failed)} plugin(s) failed (ORCH_PLUGINS_STRICT): "
                + "; ".join(f"{f.name} {f.version or '(unknown version)'} failed to load: {f.error}"
                            for f in self._failed)
            )

    def collect(self) -> None:
        """Validate each plugin's settings, then call its hooks, keeping what each registered.

        Raises:
          PluginSettingsError: a plugin's settings are invalid (the first such plugin).
          PluginLoadError: the host is strict and any plugin failed, to load or here (all named).
        """
        self._backends.clear()
        self._checks.clear()
        for registered in self._registered.values():
            registered.agents.clear()
            registered.checks.clear()
        self._configure()
        self._call_hook("register_agents", self._backends, AgentBackend, "agents")
        self._call_hook("register_checks", self._checks, Check, "checks")
        if self._strict:
            self.raise_if_failed()

    def _collected(self) -> None:
        if self._backends or self._checks:
            self.collect()

    def _caller(self, hook_name: str, plugin_name: str) -> Callable[..., Any]:
        """The hook's caller with ``plugin_name``'s implementation only, but every hook wrapper."""
        caller = getattr(self._manager.hook, hook_name)
        others = [
            impl.plugin for impl in caller.get_hookimpls()
            if impl.plugin_name != plugin_name and not (impl.hookwrapper or impl.wrapper)
        ]
        if not others:
            return caller  # type: ignore[no-any-return]
        return self._manager.subset_hook_caller(hook_name, remove_plugins=others)

    def _implementers(self, hook_name: str) -> list[str]:
        """The plugins implementing ``hook_name`` (not as a wrapper), earliest registered first."""
        caller = getattr(self._manager.hook, hook_name)
        return [
            impl.plugin_name for impl in caller.get_hookimpls()
            if not (impl.hookwrapper or impl.wrapper)
        ]

    def _configure(self) -> None:
        """Ask each plugin for its settings model and validate its section."""
        for loaded in self._registered.values():
            loaded.settings = None
        for plugin_name in self._implementers("plugin_settings"):
            registered = self._registered.get(plugin_name)
            if registered is None:
                continue
            try:
                declared = self._caller("plugin_settings", plugin_name)()
                if declared is None:
                    continue
                section, model = _settings_declaration(declared)
            except Exception as exc:
                self._fail(plugin_name, registered.version, exc)
                continue
            try:
                registered.settings = validate_section(plugin_name, section, model, self._config.get(section))
            except PluginSettingsError:
                raise
            except Exception as exc:  # the model's own validator raised something else: its bug
                self._fail(plugin_name, registered.version, exc)

    def _call_hook(self, hook_name: str, target: dict[str, Any], kind: type, attribute: str) -> None:
        for plugin_name in self._implementers(hook_name):
            registered = self._registered.get(plugin_name)
            if registered is None:
                continue
            added: dict[str, Any] = {}
            try:
                self._caller(hook_name, plugin_name)(
                    register=self._registrar(added, kind, target, hook_name), settings=registered.settings
                )
            except Exception as exc:
                self._fail(plugin_name, registered.version, exc)
                continue
            target.update(added)
            getattr(registered, attribute).extend(added)

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

    def _fail(self, name: str, version: str, exc: BaseException, *, keep_hooks: bool = False) -> None:
        """List ``name`` as failed with ``exc``, logged with its traceback; withdraw what it
        registered. ``keep_hooks`` keeps its hookimpls (its shutdown hook still runs)."""
        error = f"{type(exc).__name__}: {exc}"
        log.error(
            "plugin %s %s failed: %s", name, version or "(unknown version)", error,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        registered = self._registered.pop(name, None)
        if registered is not None:
            for backend in registered.agents:
                self._backends.pop(backend, None)
            for check in registered.checks:
                self._checks.pop(check, None)
        if not keep_hooks and self._manager.has_plugin(name):
            self._manager.unregister(name=name)
        self._failed.append(FailedPlugin(name=name, version=version, error=error))

    def _hook_names_of(self, plugin_name: str) -> list[str]:
        plugin = self._manager.get_plugin(plugin_name)
        callers = self._manager.get_hookcallers(plugin) or []
        return [caller.name for caller in callers]

    # -- lifecycle ------------------------------------------------------------

    async def startup(self, timeout_seconds: float | None = None, *, strict: bool | None = None) -> None:
        """Run every loaded plugin's ``orchestrator_startup`` hook, one plugin at a time.

        Each is bounded by ``timeout_seconds`` (default: the host's
        ``lifecycle_timeout_seconds``). A plugin whose hook raises or times out is logged with
        its traceback, listed as failed with the error, and its backends and checks are
        withdrawn (its shutdown hook still runs). With ``strict`` (default: as loaded) the
        failures then raise :class:`PluginLoadError`, naming every failed plugin.
        """
        if timeout_seconds is not None:
            self.lifecycle_timeout_seconds = timeout_seconds
        for plugin_name in self._implementers("orchestrator_startup"):
            registered = self._registered.get(plugin_name)
            if registered is None:
                continue
            try:
                await self._run_lifecycle("orchestrator_startup", plugin_name)
            except Exception as exc:
                self._fail(plugin_name, registered.version,
                           _lifecycle_error("orchestrator_startup", exc, self.lifecycle_timeout_seconds),
                           keep_hooks=True)
        if self._strict if strict is None else strict:
            self.raise_if_failed()

    async def shutdown(self) -> None:
        """Run every plugin's ``orchestrator_shutdown`` hook, then each backend's ``aclose()``.

        Each is bounded by ``lifecycle_timeout_seconds``; a failure is logged with the plugin's
        name and traceback and the shutdown goes on. Safe to call more than once.
        """
        for plugin_name in self._implementers("orchestrator_shutdown"):
            try:
                await self._run_lifecycle("orchestrator_shutdown", plugin_name)
            except Exception as exc:
                error = _lifecycle_error("orchestrator_shutdown", exc, self.lifecycle_timeout_seconds)
                log.error("plugin %s did not shut down cleanly: %s: %s", plugin_name, type(error).__name__,
                          error, exc_info=(type(exc), exc, exc.__traceback__))
        for name, backend in self._backends.items():
            aclose = getattr(backend, "aclose", None)
            if not callable(aclose):
                continue
            try:
                async with asyncio.timeout(self.lifecycle_timeout_seconds):
                    await aclose()
            except Exception as exc:
                log.warning("backend %s did not close cleanly: %s: %s", name, type(exc).__name__, exc,
                            exc_info=(type(exc), exc, exc.__traceback__))

    async def close_backends(self) -> None:
        """The same as :meth:`shutdown` (the name the orchestrator's ``close`` calls)."""
        await self.shutdown()

    async def _run_lifecycle(self, hook_name: str, plugin_name: str) -> None:
        async with asyncio.timeout(self.lifecycle_timeout_seconds):
            results = self._caller(hook_name, plugin_name)()
            for result in results:
                if inspect.isawaitable(result):
                    await result

    # -- what was loaded ------------------------------------------------------

    def settings_of(self, plugin_name: str) -> BaseModel | None:
        """The validated settings of a loaded plugin, or None when it declares none."""
        registered = self._registered.get(plugin_name)
        return None if registered is None else registered.settings

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


def _settings_declaration(declared: object) -> tuple[str, type[BaseModel]]:
    """``plugin_settings()``'s answer checked: a valid section name and a pydantic model class."""
    if not (isinstance(declared, tuple) and len(declared) == 2):
        raise TypeError(f"plugin_settings returned {declared!r}, not a (section, model class) pair")
    section, model = declared
    if not valid_section_name(section):
        raise ValueError(
            f"plugin_settings section {section!r} must be lower-case letters, digits and single '_'"
        )
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"plugin_settings model {model!r} is not a pydantic model class")
    return section, model


def _lifecycle_error(hook_name: str, exc: Exception, timeout_seconds: float) -> Exception:
    if isinstance(exc, TimeoutError):
        error = TimeoutError(f"{hook_name} did not finish within {timeout_seconds:g}s")
        error.__traceback__ = exc.__traceback__
        return error
    return exc


def load_plugins(settings: Settings, extra: Iterable[object] = ()) -> PluginHost:
    """Load the installed plugins as the settings say, plus any plugin objects given.

    Raises:
      PluginLoadError: ``settings.plugins_strict`` and any plugin failed (all of them named).
      PluginSettingsError: a plugin's settings are invalid.
    """
    host = PluginHost(
        settings.plugins,
        lifecycle_timeout_seconds=settings.plugin_lifecycle_timeout_seconds,
        strict=settings.plugins_strict,
    )
    host.load_entry_points(enabled=settings.plugins_enabled, disabled=settings.plugins_disabled)
    for plugin in extra:
        host.register(plugin)
    host.collect()
    return host
