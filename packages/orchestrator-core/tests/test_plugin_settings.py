"""Plugins' own settings: a section of the same file and ORCH_ environment as the core's,
validated when the plugins load, errors naming the plugin and the field (never the value),
delivered to the plugin's register hooks; the older per-plugin variables of a BaseSettings
model still count beneath the new ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator_core.hookspecs import RegisterCheck, SettingsDeclaration, hookimpl
from orchestrator_core.plugin_settings import PluginSettingsError, variable_for
from orchestrator_core.plugins import PluginHost, load_plugins
from orchestrator_core.settings import CONFIG_FILE_ENV, Settings
from orchestrator_core.testing import ScriptedCheck


class Limits(BaseModel):
    retries: int = 1


class SampleSettings(BaseModel):
    timeout_seconds: float = Field(default=60.0, gt=0)
    label: str = "default"
    limits: Limits = Field(default_factory=Limits)


class LegacySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCH_LEGACYSAMPLE_", extra="ignore")

    timeout_seconds: float = Field(default=60.0, gt=0)
    label: str = "default"
    token: SecretStr = SecretStr("")


class Configured:
    """A plugin declaring ``(section, model)`` and keeping the settings its hook received."""

    def __init__(self, section: str, model: type[BaseModel]) -> None:
        self.section = section
        self.model = model
        self.received: list[Any] = []

    @hookimpl
    def plugin_settings(self) -> SettingsDeclaration:
        return (self.section, self.model)

    @hookimpl
    def register_checks(self, register: RegisterCheck, settings: Any) -> None:
        self.received.append(settings)
        register(ScriptedCheck(name=f"{self.section}-check"))


@pytest.fixture(autouse=True)
def _only_the_test_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_PLUGINS_ENABLED", "none-installed")
    monkeypatch.delenv(CONFIG_FILE_ENV, raising=False)


def _loaded(plugin: Configured) -> PluginHost:
    return load_plugins(Settings(), extra=[plugin])


def test_defaults_reach_the_register_hook() -> None:
    plugin = Configured("sample", SampleSettings)
    host = _loaded(plugin)
    [settings] = plugin.received
    assert settings == SampleSettings()
    [name] = [p.name for p in host.plugins]
    assert host.settings_of(name) is settings


def test_the_section_comes_from_the_file_and_the_environment_wins_value_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "orchestrator.toml"
    config.write_text(
        '[plugins.sample]\ntimeout_seconds = 5\nlabel = "from file"\n\n[plugins.sample.limits]\nretries = 4\n'
    )
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("ORCH_PLUGINS__SAMPLE__LABEL", "from env")
    monkeypatch.setenv("ORCH_PLUGINS__SAMPLE__LIMITS__RETRIES", "7")
    plugin = Configured("sample", SampleSettings)
    _loaded(plugin)
    assert plugin.received == [SampleSettings(timeout_seconds=5, label="from env", limits=Limits(retries=7))]


def test_a_section_written_in_capitals_in_the_file_is_the_same_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "orchestrator.toml"
    config.write_text("[plugins.SAMPLE]\ntimeout_seconds = 5\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("ORCH_PLUGINS__SAMPLE__LABEL", "env")
    plugin = Configured("sample", SampleSettings)
    _loaded(plugin)
    assert plugin.received == [SampleSettings(timeout_seconds=5, label="env")]


def test_the_older_variables_of_a_base_settings_model_count_beneath_the_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_LEGACYSAMPLE_TIMEOUT_SECONDS", "9")
    monkeypatch.setenv("ORCH_LEGACYSAMPLE_LABEL", "legacy")
    monkeypatch.setenv("ORCH_PLUGINS__LEGACYSAMPLE__LABEL", "new")
    plugin = Configured("legacysample", LegacySettings)
    _loaded(plugin)
    [settings] = plugin.received
    assert (settings.timeout_seconds, settings.label) == (9, "new")


def test_an_invalid_value_names_the_plugin_and_the_field_but_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_PLUGINS__LEGACYSAMPLE__TIMEOUT_SECONDS", "-1")
    monkeypatch.setenv("ORCH_PLUGINS__LEGACYSAMPLE__TOKEN", "s3cret-token")
    monkeypatch.setenv("ORCH_PLUGINS__LEGACYSAMPLE__LABEL", "s3cret-label")
    plugin = Configured("legacysample", LegacySettings)
    host = PluginHost(Settings().plugins)
    name = host.register(plugin, name="legacy-plugin")
    with pytest.raises(PluginSettingsError) as raised:
        host.collect()
    message = str(raised.value)
    assert raised.value.plugin == name
    assert message.startswith("invalid settings of plugin legacy-plugin ([plugins.legacysample]): ")
    assert "timeout_seconds (ORCH_PLUGINS__LEGACYSAMPLE__TIMEOUT_SECONDS): Input should be greater than 0" in message
    assert "s3cret" not in message
    assert "\n" not in message


def test_variables_are_named_after_section_and_field() -> None:
    assert variable_for("dryrun", "timeout_seconds") == "ORCH_PLUGINS__DRYRUN__TIMEOUT_SECONDS"
    assert variable_for("sample", "limits.retries") == "ORCH_PLUGINS__SAMPLE__LIMITS__RETRIES"


@pytest.mark.parametrize(
    ("declared", "error"),
    [
        (("Sample", SampleSettings), "must be lower-case letters"),
        (("a__b", SampleSettings), "must be lower-case letters"),
        (("sample", dict), "is not a pydantic model class"),
        ("sample", "not a (section, model class) pair"),
    ],
)
def test_a_bad_declaration_fails_the_plugin_alone(declared: object, error: str) -> None:
    class Bad:
        @hookimpl
        def plugin_settings(self) -> object:
            return declared

    good = Configured("sample", SampleSettings)
    host = load_plugins(Settings(), extra=[Bad(), good])
    [failed] = host.failed
    assert error in failed.error
    assert good.received == [SampleSettings()]


def test_a_plugin_without_settings_gets_none() -> None:
    received: list[object] = []

    class Plain:
        @hookimpl
        def register_checks(self, register: RegisterCheck, settings: object) -> None:
            received.append(settings)

    load_plugins(Settings(), extra=[Plain()])
    assert received == [None]
