"""Settings for a test server over the openai backend, from ORCH_ variables alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator_core.settings import Settings


def openai_server_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_url: str, **variables: str
) -> Settings:
    """A server on a free loopback port with only the openai plugin, pointed at ``base_url``;
    ``variables`` (ORCH_ names) add to or override that. No ORCH_ variable of the caller leaks in."""
    for name in [name for name in os.environ if name.startswith("ORCH_")]:
        monkeypatch.delenv(name)
    defaults = {
        "ORCH_HOST": "127.0.0.1",
        "ORCH_PORT": "0",
        "ORCH_DATABASE_PATH": str(tmp_path / "records.sqlite3"),
        "ORCH_PLUGINS_ENABLED": "openai",
        "ORCH_COUNCILS__DEV__BACKEND": "openai",
        "ORCH_OPENAI_BASE_URL": base_url,
        "ORCH_OPENAI_MODEL": "dev-model",
    }
    for name, value in {**defaults, **variables}.items():
        monkeypatch.setenv(name, value)
    return Settings()
