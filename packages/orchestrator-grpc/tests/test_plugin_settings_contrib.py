"""Contrib's plugins take their settings sections: ``[plugins.dryrun]`` and
``ORCH_PLUGINS__DRYRUN__*`` for the dry-run check, ``[plugins.openai]`` and
``ORCH_PLUGINS__OPENAI__*`` for the openai backend (likewise anthropic, command, embedded);
the older ``ORCH_DRYRUN_*``/``ORCH_OPENAI_*`` names still work beneath them."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents_contrib.checks.dryrun import DryRunCheck
from agents_contrib.checks.lint import LintCheck
from agents_contrib.checks.policy import PolicyCheck
from agents_contrib.checks.settings import DryRunSettings
from agents_contrib.openai_compat import OpenAIBackend, OpenAISettings
from orchestrator_core.plugins import load_plugins
from orchestrator_core.settings import CONFIG_FILE_ENV, Settings


@pytest.fixture(autouse=True)
def _no_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_FILE_ENV, raising=False)


def _dryrun(settings: Settings) -> DryRunCheck:
    host = load_plugins(settings)
    [check] = host.checks
    assert isinstance(check, DryRunCheck)
    assert host.settings_of("dryrun") is check.settings
    return check


def test_the_dryrun_check_reads_its_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "orchestrator.toml"
    config.write_text("[plugins.dryrun]\ntimeout_seconds = 12\ncpu_seconds = 7\nisolation = \"none\"\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("ORCH_PLUGINS__DRYRUN__CPU_SECONDS", "9")
    monkeypatch.setenv("ORCH_DRYRUN_CPU_SECONDS", "3")  # the older name counts beneath both
    monkeypatch.setenv("ORCH_DRYRUN_OPEN_FILES", "99")  # ... and where they say nothing
    check = _dryrun(Settings(plugins_enabled=["dryrun"]))
    settings = check.settings
    assert isinstance(settings, DryRunSettings)
    assert (settings.timeout_seconds, settings.cpu_seconds, settings.open_files) == (12, 9, 99)


def test_the_older_dryrun_names_alone_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DRYRUN_TIMEOUT_SECONDS", "21")
    monkeypatch.setenv("ORCH_DRYRUN_ISOLATION", "none")
    assert _dryrun(Settings(plugins_enabled=["dryrun"])).settings.timeout_seconds == 21


def test_the_openai_backend_reads_its_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_PLUGINS__OPENAI__MODEL", "qwen-new")
    monkeypatch.setenv("ORCH_OPENAI_MODEL", "qwen-old")
    monkeypatch.setenv("ORCH_OPENAI_BASE_URL", "http://gpu-box:8000/v1")
    host = load_plugins(Settings(plugins_enabled=["openai"]))
    backend = host.backends["openai"]
    assert isinstance(backend, OpenAIBackend)
    assert isinstance(backend.settings, OpenAISettings)
    assert (backend.settings.model, backend.settings.base_url) == ("qwen-new", "http://gpu-box:8000/v1")
    assert [p.hooks for p in host.plugins] == [("plugin_settings", "register_agents")]


def test_the_policy_and_lint_checks_read_their_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "orchestrator.toml"
    config.write_text("[plugins.policy]\nviolation_penalty = 0.5\n[plugins.lint]\nruff_select = [\"E\"]\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("ORCH_PLUGINS__POLICY__MAX_ARTIFACT_BYTES", "2048")
    monkeypatch.setenv("ORCH_POLICY_MAX_ARTIFACT_BYTES", "1024")  # the older name counts beneath
    monkeypatch.setenv("ORCH_LINT_RUFF_SELECT", "F")
    host = load_plugins(Settings(plugins_enabled=["policy", "lint"]))
    checks = {type(check): check for check in host.checks}
    policy, lint = checks[PolicyCheck], checks[LintCheck]
    assert isinstance(policy, PolicyCheck)
    assert isinstance(lint, LintCheck)
    assert (policy.settings.violation_penalty, policy.settings.max_artifact_bytes) == (0.5, 2048)
    assert lint.settings.ruff_select == ["E"]


@pytest.mark.parametrize("plugin", ["openai", "anthropic", "command", "embedded", "dryrun", "policy", "lint"])
def test_each_contrib_plugin_declares_its_section(plugin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DRYRUN_ISOLATION", "none")
    host = load_plugins(Settings(plugins_enabled=[plugin]))
    assert host.failed == ()
    assert host.settings_of(plugin) is not None
    assert "plugin_settings" in host.plugins[0].hooks
