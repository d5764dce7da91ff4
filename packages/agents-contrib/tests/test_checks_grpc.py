"""A deliberation through the gRPC service whose ranking follows the real checks.

Three scripted agents propose code for a task with tests: one correct, one that fails one
test, one wrong. The real policy, lint and dry-run plugins judge them, and the ranking the
client receives follows what the code actually does.
"""

from __future__ import annotations

from pathlib import Path

from checks_support import CALC_GOOD, CALC_HALF, CALC_TESTS, CALC_WRONG, task

from agents_contrib.checks import dryrun, lint, policy
from orchestrator_core.plugins import PluginHost
from orchestrator_core.settings import CouncilSettings, Settings
from orchestrator_core.testing import ScriptedBackend, ScriptedPlugin
from orchestrator_grpc.client import OrchestratorClient
from orchestrator_grpc.server import running_server


async def test_code_that_passes_the_tasks_tests_outranks_code_that_fails_them(tmp_path: Path) -> None:
    backend = ScriptedBackend(agents={0: {"proposal": CALC_WRONG}, 1: {"proposal": CALC_GOOD},
                                      2: {"proposal": CALC_HALF}})
    host = PluginHost()
    host.register(ScriptedPlugin(backend), name="scripted")
    for module in (policy, lint, dryrun):
        host.register(module, name=module.__name__.rsplit(".", 1)[-1])
    host.collect()
    assert sorted(check.name for check in host.checks) == ["dryrun", "lint", "policy"]
    settings = Settings(host="127.0.0.1", port=0, database_path=tmp_path / "records.sqlite3", default_rounds=0,
                        councils={"DEV": CouncilSettings(backend="scripted", agents=3)})

    async with running_server(settings, plugins=host) as server, OrchestratorClient(server.address) as client:
        outcome = await client.deliberate(task(tests=CALC_TESTS), num_agents=3)

    ranking = [(r.rank, r.proposal.content) for r in outcome.results]
    assert ranking == [(1, CALC_GOOD), (2, CALC_HALF), (3, CALC_WRONG)]
    dryruns = [next(c for c in r.checks if c.kind == "dryrun") for r in outcome.results]
    assert [(c.passed, c.score) for c in dryruns] == [(True, 1.0), (False, 0.75), (False, 0.0)]
    assert dryruns[0].diagnostics[0].startswith("isolation: ")
    assert "tests: 4 collected: 4 passed, 0 failed, 0 errors, 0 skipped" in dryruns[0].diagnostics
    for result in outcome.results:
        assert sorted(c.kind for c in result.checks) == ["dryrun", "lint", "policy"]
        assert all(c.duration_seconds > 0 for c in result.checks)
        assert next(c for c in result.checks if c.kind == "policy").passed
    assert outcome.results[0].score > outcome.results[1].score > outcome.results[2].score
