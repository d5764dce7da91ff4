"""Plugin discovery through entry points, with broken plugins reported and skipped."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from orchestrator_core import hookspecs
from orchestrator_core.plugins import HOOK_NAMES, PluginHost, PluginLoadError, load_plugins
from orchestrator_core.settings import Settings
from orchestrator_core.testing import PluginRegistrar, ScriptedBackend, ScriptedCheck, ScriptedPlugin

ROOT = Path(__file__).resolve().parents[3]
BROKEN = ["broken-import", "broken-hook", "broken-register"]
TEST_PLUGIN_PACKAGES = ("orchestrator-sample-plugin", "orchestrator-broken-plugin")
"""Installed from tests/plugins by ``nox -s tests``, as a user installs a plugin."""


def require_installed(packages: Sequence[str]) -> None:
    """Fails the test, saying how to run it, when a test plugin package is not installed
    (the tests below would otherwise fail with an obscure unpacking or lookup error)."""
    missing = []
    for package in packages:
        try:
            distribution(package)
        except PackageNotFoundError:
            missing.append(package)
    if missing:
        pytest.fail(
            f"the test plugin package(s) {', '.join(missing)} are not installed: run the tests through "
            "nox (nox -s tests), which pip-installs them from tests/plugins",
            pytrace=False,
        )


def test_missing_test_plugin_packages_say_to_run_the_tests_through_nox() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"run the tests through nox \(nox -s tests\)") as failed:
        require_installed(["orchestrator-sample-plugin", "orchestrator-plugin-that-is-not-installed"])
    assert "package(s) orchestrator-plugin-that-is-not-installed are not installed" in str(failed.value)


def test_an_installed_plugin_is_found_through_its_entry_point() -> None:
    require_installed(TEST_PLUGIN_PACKAGES)
    host = PluginHost()
    host.load_entry_points(enabled=["sample"])
    host.collect()
    [info] = host.plugins
    assert (info.name, info.version) == ("sample", "1.2.3")
    assert info.hooks == ("register_agents", "register_checks")
    assert (info.agents, info.checks) == (("sample-template",), ("sample-length",))
    assert list(host.backends) == ["sample-template"]
    assert [check.name for check in host.checks] == ["sample-length"]


def test_broken_plugins_are_reported_with_name_version_and_error() -> None:
    require_installed(TEST_PLUGIN_PACKAGES)
    host = PluginHost()
    host.load_entry_points(enabled=["sample", *BROKEN])
    host.collect()
    failed = {f.name: f for f in host.failed}
    assert set(failed) == set(BROKEN)
    assert {f.version for f in failed.values()} == {"0.0.1"}
    assert "No module named 'orchestrator_dependency_that_is_not_installed'" in failed["broken-import"].error
    assert "registry" in failed["broken-hook"].error
    assert "is not a AgentBackend" in failed["broken-register"].error
    assert [p.name for p in host.plugins] == ["sample"]  # the good one still loads


def test_strict_loading_turns_a_broken_plugin_into_an_error() -> None:
    require_installed(TEST_PLUGIN_PACKAGES)
    host = PluginHost()
    with pytest.raises(PluginLoadError, match="broken-import 0.0.1 failed to load"):
        host.load_entry_points(enabled=["broken-import"], strict=True)


def test_deny_list_wins_over_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    require_installed(TEST_PLUGIN_PACKAGES)
    monkeypatch.setenv("ORCH_PLUGINS_ENABLED", "sample,broken-import")
    monkeypatch.setenv("ORCH_PLUGINS_DISABLED", "broken-import")
    host = load_plugins(Settings())
    assert [p.name for p in host.plugins] == ["sample"]
    assert host.failed == ()


def test_a_plugin_registering_a_taken_name_is_reported() -> None:
    host = PluginHost()
    host.register(ScriptedPlugin(ScriptedBackend(name="same")), name="first")
    host.register(ScriptedPlugin(ScriptedBackend(name="same")), name="second")
    host.collect()
    assert [p.name for p in host.plugins] == ["first"]
    assert host.failed[0].name == "second"
    assert "'same', which another plugin registered already" in host.failed[0].error


def test_the_fixture_registers_for_one_test(orchestrator_plugins: PluginRegistrar) -> None:
    name = orchestrator_plugins.register(ScriptedPlugin(ScriptedBackend(), ScriptedCheck()))
    assert list(orchestrator_plugins.host.backends) == ["scripted"]
    orchestrator_plugins.unregister_all()
    assert orchestrator_plugins.host.backends == {}
    assert name not in [p.name for p in orchestrator_plugins.host.plugins]


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in HOOK_NAMES:
        spec = getattr(hookspecs, name)
        signature = f"def {name}({', '.join(inspect.signature(spec).parameters)})"
        assert signature in readme, f"README.md does not document {signature}"
        assert spec.__doc__, f"{name} has no docstring"


async def test_an_installed_plugin_serves_a_deliberation(tmp_path: Path) -> None:
    require_installed(TEST_PLUGIN_PACKAGES)
    from orchestrator_core.models import Task
    from orchestrator_core.orchestrator import DeliberationRequest, Orchestrator
    from orchestrator_core.records.factory import store_from_settings

    settings = Settings(
        plugins_enabled=["sample"],
        councils={"DEV": {"backend": "sample-template", "agents": 2, "options": {"style": "terse"}}},
        database_path=tmp_path / "records.sqlite3",
    )
    orchestrator = Orchestrator(settings, load_plugins(settings), store_from_settings(settings))
    await orchestrator.start()
    try:
        outcome = await orchestrator.deliberate(DeliberationRequest(Task("DEV", "Sort a list"), rounds=1))
    finally:
        await orchestrator.close()
    assert [r.proposal.author_id for r in outcome.results] == ["dev-1", "dev-2"]
    assert all(r.proposal.content.startswith("[terse] dev-") for r in outcome.results)
    assert all(r.proposal.content.endswith("(specific, after 1 critique)") for r in outcome.results)
    assert [[c.name for c in r.checks] for r in outcome.results] == [["sample-length"], ["sample-length"]]
