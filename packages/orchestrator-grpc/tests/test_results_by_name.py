"""CheckSuite's policy, lint and dryrun fields hold the checks NAMED so (the built-in ones),
never a third-party check of the same kind, whatever order the plugins loaded in."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_test_support import HANG_GUARD, lint_score, make_settings, request

from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import CheckResult
from orchestrator_core.plugins import PluginHost
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck, ScriptedPlugin
from orchestrator_grpc.convert import check_suite_to_proto
from orchestrator_grpc.convert.client_results import check_suite_from_proto
from orchestrator_grpc.server import running_server

MY_LINT_SCORE = 0.3


def builtin_plugin() -> ScriptedPlugin:
    return ScriptedPlugin(
        ScriptedBackend(),
        ScriptedCheck(name="policy", kind="policy"),
        ScriptedCheck(name="lint", kind="lint", score_of=lint_score),
        ScriptedCheck(name="dryrun", kind="dryrun", score_of=lint_score),
    )


def third_party_plugin() -> ScriptedPlugin:
    return ScriptedPlugin(ScriptedCheck(name="my-lint", kind="lint", score_of=lambda proposal: MY_LINT_SCORE))


def host_with(third_party_first: bool) -> PluginHost:
    host = PluginHost()
    plugins = [("builtin", builtin_plugin()), ("third-party", third_party_plugin())]
    for name, plugin in reversed(plugins) if third_party_first else plugins:
        host.register(plugin, name=name)
    host.collect()
    return host


@pytest.mark.parametrize("third_party_first", [True, False], ids=["my-lint first", "my-lint last"])
async def test_a_third_party_lint_check_goes_to_others_whatever_the_load_order(
    third_party_first: bool, tmp_path: Path
) -> None:
    host = host_with(third_party_first)
    names = [check.name for check in host.checks]
    assert (names.index("my-lint") < names.index("lint")) is third_party_first  # the order really differs
    settings = make_settings(tmp_path, quorum=1)
    async with running_server(settings, plugins=host) as server, grpc.aio.insecure_channel(server.address) as channel:
        response = await pb_grpc.OrchestratorServiceStub(channel).Deliberate(request(), timeout=HANG_GUARD)

    assert response.results
    for result in response.results:
        suite = result.checks
        assert (suite.policy.name, suite.lint.name, suite.dryrun.name) == ("policy", "lint", "dryrun")
        assert suite.lint.score == pytest.approx(lint_score(result.proposal))  # the built-in's verdict
        assert list(suite.others) == ["my-lint"]
        assert (suite.others["my-lint"].kind, suite.others["my-lint"].score) == ("lint", MY_LINT_SCORE)


def test_the_suite_is_filled_by_name_and_read_back_whole() -> None:
    results = [
        CheckResult("my-lint", "lint", True, 0.3),
        CheckResult("lint", "lint", True, 0.9),
        CheckResult("house-policy", "policy", False, 0.0),
        CheckResult("dryrun", "dryrun", True, 1.0),
    ]
    suite = check_suite_to_proto(results)
    assert not suite.HasField("policy")  # no check is named policy
    assert (suite.lint.name, suite.lint.score) == ("lint", 0.9)
    assert suite.dryrun.name == "dryrun"
    assert sorted(suite.others) == ["house-policy", "my-lint"]
    assert sorted(check_suite_from_proto(suite), key=lambda r: r.name) == sorted(results, key=lambda r: r.name)
