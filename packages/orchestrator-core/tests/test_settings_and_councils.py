"""Settings from the environment and a TOML file; councils built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator_core.council import build_councils
from orchestrator_core.errors import NoCouncil
from orchestrator_core.models import KNOWN_ROLES
from orchestrator_core.settings import Settings
from orchestrator_core.testing import ScriptedBackend


def test_defaults_give_every_known_role_an_embedded_council() -> None:
    settings = Settings()
    assert tuple(settings.councils) == KNOWN_ROLES
    assert {c.backend for c in settings.councils.values()} == {"embedded"}
    assert settings.port == 50055


def test_the_default_backend_serves_every_council_that_names_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DEFAULT_BACKEND", "openai")
    monkeypatch.setenv("ORCH_COUNCILS__QA__BACKEND", "command")
    monkeypatch.setenv("ORCH_COUNCILS__QA__OPTIONS", '{"program": "/bin/true"}')
    settings = Settings()
    backends = {role: c.backend for role, c in settings.councils.items()}
    assert backends == {"DEV": "openai", "QA": "command", "ARCHITECT": "openai", "DEVOPS": "openai", "DATA": "openai"}


def test_environment_overrides_lay_over_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_COUNCILS__dev__AGENTS", "5")
    monkeypatch.setenv("ORCH_COUNCILS__QA__ENABLED", "false")
    monkeypatch.setenv("ORCH_COUNCILS__SECURITY__BACKEND", "scripted")
    monkeypatch.setenv("ORCH_PLUGINS_DISABLED", "a, b")
    settings = Settings()
    assert settings.councils["DEV"].agents == 5
    assert "QA" not in settings.councils
    assert settings.councils["SECURITY"].backend == "scripted"
    assert settings.plugins_disabled == ["a", "b"]


def test_a_toml_file_configures_councils_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "orchestrator.toml"
    config.write_text(
        'default_rounds = 2\nquorum = 3\n'
        '[councils.DEV]\nbackend = "scripted"\nagents = 4\noptions = { model = "small" }\n'
        'agent_options = [{}, { model = "large" }]\n'
    )
    monkeypatch.setenv("ORCH_CONFIG_FILE", str(config))
    monkeypatch.setenv("ORCH_QUORUM", "2")
    settings = Settings()
    dev = settings.councils["DEV"]
    assert (settings.default_rounds, settings.quorum) == (2, 2)
    assert (dev.backend, dev.agents) == ("scripted", 4)
    assert dev.options_for(0) == {"model": "small"}
    assert dev.options_for(1) == {"model": "large"}


def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_COUNCILS__DEV__AGENTS", "0")
    with pytest.raises(ValueError, match="agents"):
        Settings()


def test_a_council_whose_backend_is_missing_says_what_to_install() -> None:
    councils = build_councils(Settings(), {})
    dev = councils["DEV"]
    assert not dev.ready
    assert "backend 'embedded', which no installed plugin registers" in dev.problem
    assert "ORCH_COUNCILS__DEV__BACKEND" in dev.problem
    with pytest.raises(NoCouncil):
        dev.agents(3)


def test_a_council_whose_options_do_not_suit_its_backend_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_COUNCILS__DEV__BACKEND", "scripted")
    monkeypatch.setenv("ORCH_COUNCILS__DEV__OPTIONS", '{"modle": "typo"}')
    councils = build_councils(Settings(), {"scripted": ScriptedBackend()})
    assert not councils["DEV"].ready
    assert "unknown option(s) modle" in councils["DEV"].problem


def test_agents_get_ids_positions_and_their_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_COUNCILS__DEV__BACKEND", "scripted")
    monkeypatch.setenv("ORCH_COUNCILS__DEV__AGENT_OPTIONS", '[{"model": "a"}, {"model": "b"}]')
    backend = ScriptedBackend()
    council = build_councils(Settings(), {"scripted": backend})["DEV"]
    agents = council.agents(3)
    assert [a.agent_id for a in agents] == ["dev-1", "dev-2", "dev-3"]
    configs = backend.configs[-3:]
    assert [(c.index, c.council_size, dict(c.options)) for c in configs] == [
        (0, 3, {"model": "a"}), (1, 3, {"model": "b"}), (2, 3, {})
    ]


def test_a_council_larger_than_max_agents_is_not_ready_and_names_both_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH_MAX_AGENTS", "2")
    monkeypatch.setenv("ORCH_COUNCILS__DEV__BACKEND", "scripted")
    monkeypatch.setenv("ORCH_COUNCILS__QA__BACKEND", "scripted")
    monkeypatch.setenv("ORCH_COUNCILS__QA__AGENTS", "2")
    councils = build_councils(Settings(), {"scripted": ScriptedBackend()})
    dev = councils["DEV"]
    assert not dev.ready
    assert dev.problem == (
        "the DEV council has 3 agents (ORCH_COUNCILS__DEV__AGENTS), more than ORCH_MAX_AGENTS "
        "allows (2); lower one or raise the other"
    )
    assert dev.info().detail == dev.problem
    assert not dev.info().ready
    with pytest.raises(NoCouncil, match="ORCH_MAX_AGENTS"):
        dev.agents(2)
    assert councils["QA"].ready  # a council at the limit is fine
