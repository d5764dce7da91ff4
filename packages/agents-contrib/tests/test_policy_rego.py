"""Operator policies in Rego: loaded from a directory at startup, evaluated per proposal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from checks_support import SAMPLES, proposal, python_block, task

from agents_contrib.checks import policy as policy_plugin
from agents_contrib.checks.policy import PolicyCheck
from agents_contrib.checks.rego import PolicyLoadError, load_policies
from agents_contrib.checks.settings import PolicySettings
from orchestrator_core.plugins import PluginHost, PluginLoadError

POLICIES = SAMPLES / "policies"
MANIFEST = "```yaml\napiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - image: nginx:latest\n```\n"


def test_every_policy_of_the_directory_is_loaded_except_unit_tests() -> None:
    policies = load_policies(POLICIES)
    assert [p.relative_to(POLICIES).as_posix() for p in policies.files] == [
        "images.rego", "legacy.rego", "nested/roles.rego"]
    assert policies.packages == ("orchestrator.images", "orchestrator.legacy", "orchestrator.roles")


async def test_deny_messages_become_violations_with_ids_and_locations() -> None:
    check = PolicyCheck(PolicySettings(dir=POLICIES))
    content = MANIFEST + python_block("print('hello')") + "TODO: tests\n"
    result = await check.run(task(role="DEVOPS"), proposal(content))
    assert not result.passed
    assert result.diagnostics == (
        "REGO:orchestrator.images artifact 1 (yaml) pins an image to :latest",
        "REGO:orchestrator.legacy proposal leaves a TODO",
        "ROLE002 print() left in production code at line 1 of artifact 2 (python)",
    )


async def test_policies_see_the_task() -> None:
    check = PolicyCheck(PolicySettings(dir=POLICIES))
    result = await check.run(task(role="DEVOPS"), proposal(python_block("x = 1")))
    assert result.diagnostics == ("ROLE001 a DEVOPS proposal must contain a YAML manifest",)
    passing = await check.run(task(role="DEV"), proposal(python_block("x = 1")))
    assert passing.passed
    assert passing.score == 1.0


def test_a_broken_policy_is_reported_when_the_check_is_built() -> None:
    with pytest.raises(PolicyLoadError, match=r"broken\.rego does not compile"):
        PolicyCheck(PolicySettings(dir=SAMPLES / "policies_broken"))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "holds no .rego file"),
        ({"a.rego": "package orchestrator.a\nallowed := true\n"}, "defines a deny rule"),
        ({"a.rego": "deny contains 1 if { true }\n"}, "declares no package"),
    ],
)
def test_unusable_directories_are_refused(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    with pytest.raises(PolicyLoadError, match=message):
        load_policies(tmp_path)


def test_a_missing_directory_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="ORCH_POLICY_DIR"):
        load_policies(tmp_path / "absent")


def test_the_plugin_loads_policies_from_the_setting_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(SAMPLES / "policies", tmp_path / "policies")
    monkeypatch.setenv("ORCH_POLICY_DIR", str(tmp_path / "policies"))
    host = PluginHost()
    host.register(policy_plugin, name="policy")
    host.collect()
    (check,) = host.checks
    assert isinstance(check, PolicyCheck)
    assert check.policies is not None
    assert len(check.policies.entry_points) == 3


def test_a_broken_policy_fails_the_plugin_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_POLICY_DIR", str(SAMPLES / "policies_broken"))
    host = PluginHost()
    host.load_entry_points(enabled=["policy"])
    host.collect()
    assert host.checks == ()
    (failed,) = host.failed
    assert failed.name == "policy"
    assert "broken.rego does not compile" in failed.error

    strict = PluginHost()
    strict.load_entry_points(enabled=["policy"], strict=True)
    with pytest.raises(PluginLoadError, match=r"broken\.rego"):
        strict.collect()
