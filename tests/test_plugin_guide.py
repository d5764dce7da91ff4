"""docs/plugins.md cannot fall behind the contract: every hook, every member of the plugin
Protocols and every plugin-facing setting is named in it, and its tutorial's check and
backend pass the conformance kit as written."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from orchestrator_core import conformance, hookspecs, reachability
from orchestrator_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"
CORE = ROOT / "packages" / "orchestrator-core" / "src" / "orchestrator_core"
PLUGIN_FACING_MODULES = ("hookspecs.py", "plugins.py", "plugin_settings.py", "plugin_calls.py", "conformance.py")
PLUGIN_FACING_FIELDS = ("agent_timeout_seconds", "check_timeout_seconds", "heavy_check_concurrency",
                        "check_weights", "endpoint_probe_seconds", "loop_stall_seconds")
"""Settings of the service that bound or weigh plugin calls (the plugin_* ones are found by name)."""


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def hookspec_names() -> list[str]:
    tree = ast.parse((CORE / "hookspecs.py").read_text(encoding="utf-8"))
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            decorators = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
            if any(isinstance(d, ast.Name) and d.id == "hookspec" for d in decorators):
                names.append(node.name)
    return names


def protocol_members() -> dict[str, list[str]]:
    protocols = {name: getattr(hookspecs, name) for name in hookspecs.__all__}
    protocols["ProbingBackend"] = reachability.ProbingBackend
    members: dict[str, list[str]] = {}
    for name, value in protocols.items():
        if not (inspect.isclass(value) and getattr(value, "_is_protocol", False)):
            continue
        source = ast.parse(inspect.getsource(value).strip())
        body = source.body[0].body  # type: ignore[attr-defined]
        members[name] = [
            *(item.target.id for item in body if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)),
            *(item.name for item in body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)),
        ]
    return members


def plugin_settings_variables() -> set[str]:
    names = {f"ORCH_{field.upper()}" for field in Settings.model_fields
             if field.startswith(("plugin", "plugins")) or field in PLUGIN_FACING_FIELDS}
    for module in PLUGIN_FACING_MODULES:
        path = CORE / module
        if path.exists():
            found = re.findall(r"ORCH_[A-Z0-9_]+", path.read_text(encoding="utf-8"))
            names.update(name for name in found if not name.endswith("_"))  # not prefixes (ORCH_DRYRUN_)
    return names


def test_every_hook_is_in_the_guide() -> None:
    names = hookspec_names()
    assert {"register_agents", "register_checks", "orchestrator_startup", "orchestrator_shutdown"} <= set(names)
    missing = [name for name in names if f"`{name}(" not in guide()]
    assert not missing, f"hooks missing from docs/plugins.md: {missing}"


def test_every_protocol_and_member_is_in_the_guide() -> None:
    members = protocol_members()
    assert {"Agent", "AgentBackend", "Check", "SelectingAgent", "BlockingCheck"} <= set(members)
    text = guide()
    missing = [f"{protocol}.{member}" for protocol, names in members.items() for member in [protocol, *names]
               if f"`{member}" not in text]
    assert not missing, f"plugin Protocols or members missing from docs/plugins.md: {missing}"


def test_every_plugin_facing_setting_is_in_the_guide() -> None:
    variables = plugin_settings_variables()
    assert {"ORCH_PLUGINS_STRICT", "ORCH_CHECK_TIMEOUT_SECONDS", "ORCH_PLUGIN_LIFECYCLE_TIMEOUT_SECONDS"} <= variables
    text = guide()
    missing = sorted(name for name in variables if not re.search(rf"\b{re.escape(name)}(?:__|\b)", text))
    assert not missing, f"plugin-facing settings missing from docs/plugins.md: {missing}"


def test_the_guide_names_the_api_version_and_the_readme_links_it() -> None:
    assert f"**{hookspecs.PLUGIN_API_VERSION}**" in guide()
    assert hookspecs.PLUGIN_API_ATTRIBUTE in guide()
    assert "docs/plugins.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def tutorial_module() -> ModuleType:
    """The guide's check and backend, as a reader would copy them; the backend's model call
    (left to the reader) answers with the prompt it was given."""
    blocks = re.findall(r"```python\n(.*?)```", guide(), re.DOTALL)
    check = next(block for block in blocks if "class TodoCheck" in block)
    backend = next(block for block in blocks if "class AcmeBackend" in block)
    module = ModuleType("guide_tutorial")
    exec(compile(check + "\n" + backend, str(GUIDE), "exec"), module.__dict__)  # the guide's own text

    async def complete(self: Any, prompt: str) -> str:
        await asyncio.sleep(0)
        return f"echo: {prompt[:200]}"

    module.AcmeAgent._complete = complete
    return module


@pytest.mark.parametrize("verify", ["verify_check_contract", "verify_check_result", "verify_check_hostile_inputs",
                                    "verify_check_in_engine"])
def test_the_tutorial_check_passes_the_conformance_kit(verify: str) -> None:
    asyncio.run(getattr(conformance, verify)(tutorial_module().TodoCheck()))


@pytest.mark.parametrize("verify", ["verify_backend_contract", "verify_backend_rejects_unknown_options",
                                    "verify_agent_replies", "verify_backend_in_engine"])
def test_the_tutorial_backend_passes_the_conformance_kit(verify: str) -> None:
    function = getattr(conformance, verify)
    backend = tutorial_module().AcmeBackend()
    arguments: list[Any] = [backend, {"model": "acme-small"}]
    if "limits" in inspect.signature(function).parameters:
        arguments.append(conformance.DEFAULT_LIMITS)
    asyncio.run(function(*arguments))
