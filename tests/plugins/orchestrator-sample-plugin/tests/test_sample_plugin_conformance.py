"""The sample plugin held to the plugin contract by the conformance kit, as any plugin's
tests would hold it: its backend and its check, through the real engine."""

from __future__ import annotations

from importlib.metadata import entry_points

from orchestrator_sample_plugin import LengthCheck, TemplateBackend

from orchestrator_core.plugins import ENTRY_POINT_GROUP, PluginHost
from orchestrator_core.testing import AgentBackendConformance, CheckConformance


class TestTemplateBackend(AgentBackendConformance):
    backend = TemplateBackend()
    options = {"style": "terse"}


class TestTemplateBackendWithoutOptions(AgentBackendConformance):
    backend = TemplateBackend()


class TestLengthCheck(CheckConformance):
    check = LengthCheck()


def test_the_entry_point_registers_the_backend_and_the_check() -> None:
    [entry_point] = [e for e in entry_points(group=ENTRY_POINT_GROUP) if e.name == "sample"]
    assert entry_point.value == "orchestrator_sample_plugin"
    host = PluginHost()
    host.load_entry_points(enabled=["sample"])
    host.collect()
    assert host.failed == ()
    assert list(host.backends) == ["sample-template"]
    assert [check.name for check in host.checks] == ["sample-length"]
