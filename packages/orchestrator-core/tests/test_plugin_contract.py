"""The plugin contract is complete and the host keeps to it: every member the host reads from
a plugin's objects is declared in a Protocol of :mod:`orchestrator_core.hookspecs`, hooks are
called through pluggy (hook wrappers and call monitoring see them) one plugin at a time, a
failing plugin fails alone and is logged with its traceback, strict mode names every failed
plugin, and a backend whose ``create`` raises anything leaves its council not ready."""

from __future__ import annotations

import ast
import logging
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator_core import hookspecs
from orchestrator_core.council import build_councils
from orchestrator_core.hookspecs import (
    Agent,
    AgentBackend,
    BlockingCheck,
    BoundedCheck,
    Check,
    ClosingBackend,
    DescribedAgent,
    HeavyCheck,
    ProbingBackend,
    RegisterAgentBackend,
    RegisterCheck,
    SelectingAgent,
    TimeoutAwareAgent,
    hookimpl,
)
from orchestrator_core.models import AgentConfig
from orchestrator_core.plugins import HOOK_NAMES, PluginHost, PluginLoadError
from orchestrator_core.settings import CouncilSettings, Settings
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck, ScriptedPlugin

SOURCES = Path(__file__).resolve().parents[2]
CORE = SOURCES / "orchestrator-core" / "src" / "orchestrator_core"
GRPC = SOURCES / "orchestrator-grpc" / "src" / "orchestrator_grpc"

PROTOCOLS: tuple[type, ...] = (
    Agent, SelectingAgent, DescribedAgent, TimeoutAwareAgent,
    AgentBackend, ProbingBackend, ClosingBackend,
    Check, HeavyCheck, BlockingCheck, BoundedCheck,
)
NOT_PLUGIN_READS = {
    "backend",  # the core's GuardedAgent names the backend that made its agent
    "agent",  # the agent a GuardedAgent wraps
}
"""Names read with getattr on the core's own wrappers, not on plugin objects."""
HOST_SOURCES = [
    path for path in [*CORE.rglob("*.py"), GRPC / "server.py", GRPC / "service.py"]
    if path.name not in ("testing.py", "conformance.py", "validation.py") and path.exists()
]
"""The sources that read plugin objects (the kit's conformance checks and request
validation read other things by name)."""


def _members(protocol: type) -> set[str]:
    names = set(getattr(protocol, "__annotations__", {}))
    names.update(name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_"))
    return names


def _declared() -> set[str]:
    return set().union(*(_members(protocol) for protocol in PROTOCOLS))


def _read_by_name(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            yield node.args[1].value, node.lineno


def test_every_member_the_host_reads_by_name_is_declared_in_a_protocol() -> None:
    declared = _declared()
    undeclared = [
        f"{path.relative_to(SOURCES)}:{line}: {name}"
        for path in HOST_SOURCES
        for name, line in _read_by_name(path)
        if name not in declared and name not in NOT_PLUGIN_READS
    ]
    assert not undeclared, f"read from plugin objects but in no Protocol of hookspecs: {undeclared}"


@pytest.mark.parametrize(
    ("protocol", "members"),
    [
        (Agent, {"agent_id", "generate", "critique", "revise"}),
        (SelectingAgent, {"select"}),
        (DescribedAgent, {"describe"}),
        (TimeoutAwareAgent, {"on_timeout"}),
        (AgentBackend, {"name", "create"}),
        (ProbingBackend, {"probe_endpoint"}),
        (ClosingBackend, {"aclose"}),
        (Check, {"name", "kind", "run"}),
        (HeavyCheck, {"heavy"}),
        (BlockingCheck, {"blocking"}),
        (BoundedCheck, {"timeout_seconds"}),
    ],
)
def test_each_protocol_declares_its_members_and_says_what_they_mean(protocol: type, members: set[str]) -> None:
    assert members <= _members(protocol)
    assert protocol.__doc__
    assert len(protocol.__doc__) > 40


def test_optional_members_are_separate_protocols() -> None:
    check = ScriptedCheck()
    assert isinstance(check, Check)
    assert isinstance(check, HeavyCheck)  # ScriptedCheck has heavy
    assert not isinstance(check, BlockingCheck)
    assert not isinstance(check, BoundedCheck)
    assert not isinstance(ScriptedBackend(), ClosingBackend)


def test_the_errors_a_plugin_raises_are_documented() -> None:
    doc = hookspecs.__doc__ or ""
    for phrase in ("BackendUnavailable", "UNAVAILABLE", "BackendRejected", "FAILED_PRECONDITION",
                   "AgentError", "ValueError", "plugin bug"):
        assert phrase in doc


def test_every_hook_has_a_spec_with_a_docstring() -> None:
    for name in HOOK_NAMES:
        assert getattr(hookspecs, name).__doc__


# -- hooks are called through pluggy ----------------------------------------------------


class Wrapper:
    """A hook wrapper plugin: sees every register_agents call, as a monitoring plugin would."""

    def __init__(self) -> None:
        self.seen = 0

    @hookimpl(wrapper=True)
    def register_agents(self, register: RegisterAgentBackend) -> Generator[None, Any, Any]:
        self.seen += 1
        return (yield)


class Failing:
    @hookimpl
    def register_agents(self, register: RegisterAgentBackend) -> None:
        raise KeyError("missing")


def test_hooks_go_through_pluggy_so_wrappers_and_monitoring_see_each_plugins_call() -> None:
    host = PluginHost()
    wrapper = Wrapper()
    host.register(wrapper, name="wrapper")
    host.register(ScriptedPlugin(ScriptedBackend(name="one")), name="one")
    host.register(ScriptedPlugin(ScriptedBackend(name="two")), name="two")
    monitored: list[str] = []
    host.manager.add_hookcall_monitoring(lambda name, impls, kwargs: monitored.append(name), lambda *a: None)
    host.collect()
    assert sorted(host.backends) == ["one", "two"]
    assert wrapper.seen == 2  # once per plugin's call
    assert monitored.count("register_agents") == 2
    assert monitored.count("register_checks") == 2


def test_a_failing_hook_fails_its_plugin_alone_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    host = PluginHost()
    host.register(ScriptedPlugin(ScriptedBackend(name="good")), name="good")
    host.register(Failing(), name="failing")
    with caplog.at_level(logging.ERROR, logger="orchestrator_core.plugins"):
        host.collect()
    assert list(host.backends) == ["good"]
    [failed] = host.failed
    assert (failed.name, failed.error) == ("failing", "KeyError: 'missing'")
    [record] = [r for r in caplog.records if "failing" in r.getMessage()]
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError


def test_a_hookimpl_may_leave_out_the_settings_argument() -> None:
    host = PluginHost()
    host.register(ScriptedPlugin(ScriptedBackend(), ScriptedCheck()), name="scripted")
    host.collect()
    assert list(host.backends) == ["scripted"]
    assert [c.name for c in host.checks] == ["scripted-check"]


class ManyFailures:
    @hookimpl
    def register_checks(self, register: RegisterCheck) -> None:
        register(object())  # type: ignore[arg-type]


def test_strict_mode_names_every_failed_plugin_after_trying_them_all() -> None:
    from orchestrator_core.plugins import load_plugins

    settings = Settings(plugins_enabled=["none-installed"], plugins_strict=True)
    with pytest.raises(PluginLoadError) as raised:
        load_plugins(settings, extra=[Failing(), ManyFailures(), ScriptedPlugin(ScriptedBackend())])
    message = str(raised.value)
    assert "2 plugin(s) failed" in message
    assert "KeyError: 'missing'" in message
    assert "is not a Check" in message


# -- a backend whose create() raises anything --------------------------------------------


class KeyErrorBackend:
    name = "keyerror"

    def create(self, config: AgentConfig) -> Agent:
        raise KeyError("model")


def test_a_backend_whose_create_raises_anything_leaves_its_council_not_ready(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(councils={"DEV": CouncilSettings(backend="keyerror", agents=1)})
    with caplog.at_level(logging.ERROR, logger="orchestrator_core.council"):
        councils = build_councils(settings, {"keyerror": KeyErrorBackend()})
    dev = councils["DEV"].info()
    assert not dev.ready
    assert "backend 'keyerror'" in dev.detail
    assert "KeyError: 'model'" in dev.detail
    [record] = caplog.records
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError
