"""The versioned plugin API: PLUGIN_API_VERSION, a plugin's ORCHESTRATOR_PLUGIN_API range
checked with packaging.specifiers, an incompatible plugin listed as failed with both versions
named, a plugin that declares nothing accepted."""

from __future__ import annotations

import types

import pytest
from packaging.version import Version

import orchestrator_core
from orchestrator_core import hookspecs
from orchestrator_core.hookspecs import PLUGIN_API_ATTRIBUTE, RegisterAgentBackend, hookimpl
from orchestrator_core.plugins import IncompatiblePlugin, PluginHost, check_plugin_api
from orchestrator_core.testing import ScriptedBackend


def _plugin(declared: object = None, backend: str = "versioned") -> types.ModuleType:
    """A plugin module, as an entry point names one, declaring ``declared`` (None: nothing)."""
    module = types.ModuleType("versioned_plugin")

    @hookimpl
    def register_agents(register: RegisterAgentBackend) -> None:
        register(ScriptedBackend(name=backend))

    module.register_agents = register_agents  # type: ignore[attr-defined]
    if declared is not None:
        setattr(module, PLUGIN_API_ATTRIBUTE, declared)
    return module


def test_the_version_is_exported_by_the_package_and_the_contract() -> None:
    assert orchestrator_core.PLUGIN_API_VERSION == hookspecs.PLUGIN_API_VERSION == "1.0"
    assert Version(orchestrator_core.PLUGIN_API_VERSION).release[:2] == (1, 0)
    assert PLUGIN_API_ATTRIBUTE == "ORCHESTRATOR_PLUGIN_API"


@pytest.mark.parametrize("declared", [None, ">=1.0,<2", ">=1", "~=1.0", "==1.*"])
def test_a_compatible_or_silent_plugin_loads(declared: str | None) -> None:
    host = PluginHost()
    host.register(_plugin(declared), name="versioned", version="3.1")
    host.collect()
    assert list(host.backends) == ["versioned"]
    assert host.failed == ()


@pytest.mark.parametrize("declared", [">=2.0,<3", "<1.0", ">=1.1"])
def test_an_incompatible_plugin_is_listed_as_failed_with_both_versions(declared: str) -> None:
    host = PluginHost()
    with pytest.raises(IncompatiblePlugin) as raised:
        host.register(_plugin(declared), name="versioned")
    assert str(raised.value) == (
        f"the plugin supports orchestrator plugin API {declared}, this orchestrator provides plugin API 1.0"
    )
    assert host.plugins == ()


@pytest.mark.parametrize(("declared", "error"), [("banana", "is not a version range"), (2, "must be a version range")])
def test_a_declaration_that_is_not_a_range_is_an_error(declared: object, error: str) -> None:
    with pytest.raises(IncompatiblePlugin, match=error):
        check_plugin_api(_plugin(declared))


def test_a_future_host_version_is_checked_against_the_same_range() -> None:
    plugin = _plugin(">=1.0,<2")
    check_plugin_api(plugin, "1.7")
    with pytest.raises(IncompatiblePlugin, match="this orchestrator provides plugin API 2.0"):
        check_plugin_api(plugin, "2.0")


def test_an_incompatible_entry_point_plugin_is_listed_as_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import orchestrator_core.plugins as plugins

    module = _plugin(">=2,<3")
    monkeypatch.setitem(__import__("sys").modules, "versioned_plugin", module)
    entry_point = EntryPoint(name="future", value="versioned_plugin", group="orchestrator")
    monkeypatch.setattr(plugins, "entry_points", lambda group: [entry_point])
    host = PluginHost()
    host.load_entry_points()
    host.collect()
    [failed] = host.failed
    assert failed.name == "future"
    assert failed.error == (
        "IncompatiblePlugin: the plugin supports orchestrator plugin API >=2,<3, "
        "this orchestrator provides plugin API 1.0"
    )
    assert host.backends == {}


def test_contribs_plugins_declare_the_range_of_this_major_version() -> None:
    from agents_contrib import anthropic_backend, command, embedded, openai_compat
    from agents_contrib.checks import dryrun, lint, policy

    for module in (anthropic_backend, command, embedded, openai_compat, dryrun, lint, policy):
        check_plugin_api(module)
        assert getattr(module, PLUGIN_API_ATTRIBUTE) == ">=1.0,<2"
