"""The TOML file and the environment merge value by value; a named file must exist and parse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator_core.settings import DEFAULT_CHECK_WEIGHTS, Settings, SettingsFileError

COUNCIL_FILE = """
[councils.DEV]
backend = "command"
agents = 2
options = { program = "/bin/cat", model = "small" }
agent_options = [{ model = "large" }]
"""
FILE_DEV = {
    "enabled": True,
    "backend": "command",
    "agents": 2,
    "options": {"program": "/bin/cat", "model": "small"},
    "agent_options": [{"model": "large"}],
}


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "orchestrator.toml"
    monkeypatch.setenv("ORCH_CONFIG_FILE", str(path))
    return path


def _dev(settings: Settings) -> dict[str, Any]:
    return settings.councils["DEV"].model_dump()


@pytest.mark.parametrize(
    ("variable", "value", "changed"),
    [
        ("ORCH_COUNCILS__DEV__AGENTS", "4", {"agents": 4}),
        ("ORCH_COUNCILS__DEV__BACKEND", "openai", {"backend": "openai"}),
        ("ORCH_COUNCILS__DEV__ENABLED", "true", {}),
        # Options merge key by key: the file's program stays, the environment's model wins.
        ("ORCH_COUNCILS__DEV__OPTIONS__MODEL", "tiny", {"options": {"program": "/bin/cat", "model": "tiny"}}),
        ("ORCH_COUNCILS__DEV__OPTIONS", '{"timeout": 5}',
         {"options": {"program": "/bin/cat", "model": "small", "timeout": 5}}),
        # A list is one value: the environment's replaces the file's.
        ("ORCH_COUNCILS__DEV__AGENT_OPTIONS", '[{"model": "a"}, {"model": "b"}]',
         {"agent_options": [{"model": "a"}, {"model": "b"}]}),
    ],
)
def test_one_environment_variable_changes_one_value_of_a_council_from_the_file(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, changed: dict[str, Any]
) -> None:
    config_file.write_text(COUNCIL_FILE)
    monkeypatch.setenv(variable, value)
    assert _dev(Settings()) == {**FILE_DEV, **changed}


def test_the_environment_can_disable_a_council_the_file_configures(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text(COUNCIL_FILE)
    monkeypatch.setenv("ORCH_COUNCILS__DEV__ENABLED", "false")
    assert "DEV" not in Settings().councils


def test_a_role_spelled_in_lower_case_in_the_file_is_the_same_council(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text('[councils.qa]\nbackend = "command"\noptions = { program = "/bin/cat" }\n')
    monkeypatch.setenv("ORCH_COUNCILS__QA__AGENTS", "5")
    qa = Settings().councils["QA"]
    assert (qa.backend, qa.agents, qa.options) == ("command", 5, {"program": "/bin/cat"})


def test_a_council_the_file_does_not_name_still_gets_the_default_backend(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text('default_backend = "openai"\n' + COUNCIL_FILE)
    monkeypatch.setenv("ORCH_COUNCILS__QA__AGENTS", "5")
    settings = Settings()
    assert (settings.councils["QA"].backend, settings.councils["QA"].agents) == ("openai", 5)
    assert settings.councils["DEV"].backend == "command"


def test_check_weights_merge_over_the_file_and_the_defaults(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text("[check_weights]\nlint = 3.0\nstyle = 0.5\n")
    monkeypatch.setenv("ORCH_CHECK_WEIGHTS__DRYRUN", "4")
    assert Settings().check_weights == {"policy": 1.0, "lint": 3.0, "dryrun": 4.0, "style": 0.5}


def test_a_check_weight_from_the_environment_alone_keeps_the_other_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_CHECK_WEIGHTS__LINT", "0")
    assert Settings().check_weights == {**DEFAULT_CHECK_WEIGHTS, "lint": 0.0}
    monkeypatch.delenv("ORCH_CHECK_WEIGHTS__LINT")
    monkeypatch.setenv("ORCH_CHECK_WEIGHTS", '{"style": 2}')
    assert Settings().check_weights == {**DEFAULT_CHECK_WEIGHTS, "style": 2.0}


def test_plain_values_of_the_file_yield_to_the_environment(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file.write_text('default_rounds = 2\nmax_agents = 6\nplugins_disabled = ["a"]\n')
    monkeypatch.setenv("ORCH_MAX_AGENTS", "7")
    settings = Settings()
    assert (settings.default_rounds, settings.max_agents, settings.plugins_disabled) == (2, 7, ["a"])


def test_a_missing_config_file_is_an_error_naming_it(config_file: Path) -> None:
    with pytest.raises(SettingsFileError, match=rf"ORCH_CONFIG_FILE {config_file} cannot be read: No such file"):
        Settings()


def test_a_config_file_that_is_a_directory_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_CONFIG_FILE", str(tmp_path))
    with pytest.raises(SettingsFileError, match=rf"ORCH_CONFIG_FILE {tmp_path} cannot be read"):
        Settings()


def test_invalid_toml_is_an_error_naming_the_file_and_line(config_file: Path) -> None:
    config_file.write_text('default_rounds = 2\n[councils.DEV]\nbackend = "command\n')
    with pytest.raises(SettingsFileError) as error:
        Settings()
    message = str(error.value)
    assert message.startswith(f"ORCH_CONFIG_FILE {config_file} is not valid TOML: ")
    assert "line 3" in message


def test_the_log_level_is_a_logging_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_LOG_LEVEL", "debug")
    assert Settings().log_level == "DEBUG"
    monkeypatch.setenv("ORCH_LOG_LEVEL", "verbose")
    with pytest.raises(ValueError, match="log_level"):
        Settings()
