"""Every setting the service and the command read is documented, so the docs cannot fall behind."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from orchestrator_core.settings import CONFIG_FILE_ENV, Settings

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", ROOT / "packages" / "orchestrator-core" / "README.md")
GRPC_SOURCES = ROOT / "packages" / "orchestrator-grpc" / "src"


def _documented(variable: str) -> bool:
    # A nested setting is documented by its parts: ORCH_COUNCILS__<ROLE>__AGENTS.
    pattern = re.compile(rf"\b{re.escape(variable)}(?:__|\b)")
    return any(pattern.search(document.read_text()) for document in DOCUMENTS)


def _variables_named_in(sources: Path) -> set[str]:
    """The ``ORCH_*`` names a package's code holds as string constants (``TOKEN_ENV = "ORCH_TOKEN"``)."""
    names: set[str] = set()
    for path in sources.rglob("*.py"):
        constants = (node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant))
        names.update(c for c in constants if isinstance(c, str) and re.fullmatch(r"ORCH_[A-Z0-9_]+", c))
    return names


def test_every_field_of_the_settings_is_documented() -> None:
    variables = [f"ORCH_{name.upper()}" for name in Settings.model_fields]
    assert "ORCH_HOST" in variables  # the fields were found
    missing = [variable for variable in variables if not _documented(variable)]
    assert not missing, f"settings missing from README.md and packages/orchestrator-core/README.md: {missing}"


def test_the_config_file_and_the_commands_own_variables_are_documented() -> None:
    variables = {CONFIG_FILE_ENV, *_variables_named_in(GRPC_SOURCES)}
    assert "ORCH_TOKEN" in variables  # the client's token variable was found
    missing = sorted(variable for variable in variables if not _documented(variable))
    assert not missing, f"variables missing from README.md and packages/orchestrator-core/README.md: {missing}"
