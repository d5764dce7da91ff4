"""The service against plugins that misbehave on purpose (tests/plugins/orchestrator-hostile-plugin,
one entry point per misbehaviour, armed by ORCHESTRATOR_HOSTILE_PLUGINS).

For each: ``orchestrator serve`` starts with it beside the sample plugin and the built-in lint
check, health answers, a deliberation's other check results are exactly what they are without
it, the error names the plugin, and the service log has what an operator needs (the traceback
of a bug, the stack of a stalled loop)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_support import serve_process
from grpc_test_support import HANG_GUARD, orchestrator_command

HOSTILE_PACKAGE = "orchestrator-hostile-plugin"
ARMING_VARIABLE = "ORCHESTRATOR_HOSTILE_PLUGINS"
BASE_PLUGINS = ("sample", "lint")
OTHER_CHECKS = ("lint", "sample-length")
"""The checks whose results a hostile plugin must not change."""
TASK = "Write a function that adds two numbers"
HOSTILE_ROLE = "HOSTILE"


@dataclass
class Served:
    process: subprocess.Popen[str]
    address: str
    log: Path
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [orchestrator_command(), *args, "--address", self.address], env=self.env, capture_output=True,
            text=True, timeout=HANG_GUARD * 3, check=False,
        )

    def status(self) -> dict[str, Any]:
        result = self.run("status")
        assert result.returncode == 0, result.stderr
        status: dict[str, Any] = json.loads(result.stdout)
        return status

    def deliberate(self, role: str = "DEV") -> subprocess.CompletedProcess[str]:
        return self.run("deliberate", "--role", role, "--task", TASK, "--json")

    def checks(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Each proposal's check results, by proposal id and check name."""
        result = self.deliberate()
        assert result.returncode == 0, result.stderr
        response = json.loads(result.stdout)
        by_proposal: dict[str, dict[str, dict[str, Any]]] = {}
        for ranked in response["results"]:
            suite = ranked["checks"]
            named = {name: suite[name] for name in ("policy", "lint", "dryrun") if name in suite}
            by_proposal[ranked["proposal"]["proposal_id"]] = {**named, **suite.get("others", {})}
        return by_proposal

    def plugin_failures(self, name: str) -> dict[str, Any]:
        failures = self.status()["statistics"].get("plugin_failures", [])
        return next((f for f in failures if f["name"] == name), {})


def require_hostile_package() -> None:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution(HOSTILE_PACKAGE)
    except PackageNotFoundError:
        pytest.fail(f"{HOSTILE_PACKAGE} is not installed: run the tests through nox (nox -s tests), which "
                    "pip-installs it from tests/plugins", pytrace=False)


def environment(tmp_path: Path, hostile: str = "", **variables: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("ORCH_") and name != ARMING_VARIABLE}
    env.update(
        ORCH_PLUGINS_ENABLED=",".join([*BASE_PLUGINS, *([hostile] if hostile else [])]),
        ORCH_COUNCILS__DEV__BACKEND="sample-template",
        ORCH_COUNCILS__DEV__AGENTS="2",
        ORCH_DEFAULT_BACKEND="sample-template",
        ORCH_DATABASE_PATH=str(tmp_path / "records.sqlite3"),
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
        ORCH_GRACE_PERIOD_SECONDS="2",
        ORCH_ENDPOINT_PROBE_SECONDS="0",
    )
    if hostile:
        env[ARMING_VARIABLE] = hostile
    env.update(variables)
    return env


def start(env: dict[str, str], log: Path, what: str) -> Served:
    """``orchestrator serve`` with ``env``, once it says it is serving; it must start."""
    process, address = serve_process(env, log, wait=HANG_GUARD * 3, what=what)
    return Served(process, address, log, env)


def stop(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    try:
        served.process.wait(timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(hostile, **ORCH_variables)``: the service with one hostile entry point armed
    beside the sample plugin and the built-in lint check. Stopped after the test."""
    require_hostile_package()
    started: list[Served] = []

    def serve_with(hostile: str = "", **variables: str) -> Served:
        log = tmp_path / f"serve-{len(started)}.log"
        started.append(start(environment(tmp_path, hostile, **variables), log, hostile or "no hostile plugin"))
        return started[-1]

    yield serve_with
    for served in started:
        stop(served)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, Any]]]:
    """The other checks' results without any hostile plugin."""
    require_hostile_package()
    tmp_path = tmp_path_factory.mktemp("baseline")
    served = start(environment(tmp_path), tmp_path / "serve.log", "no hostile plugin")
    try:
        return served.checks()
    finally:
        stop(served)


def unchanged(checks: dict[str, dict[str, dict[str, Any]]], baseline: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The other checks judged every proposal as they do without the hostile plugin."""

    def verdicts(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, tuple[Any, ...]]]:
        return {
            proposal: {
                name: (r["name"], r["kind"], r.get("passed", False), r.get("score", 0.0),
                       tuple(r.get("diagnostics", ())))
                for name, r in by_name.items() if name in OTHER_CHECKS
            }
            for proposal, by_name in results.items()
        }

    assert verdicts(checks) == verdicts(baseline)
    assert all(set(OTHER_CHECKS) <= set(by_name) for by_name in checks.values())


def healthy(served: Served) -> None:
    result = served.run("health")
    assert result.returncode == 0, result.stderr


def hostile_result(checks: dict[str, dict[str, dict[str, Any]]], name: str) -> list[dict[str, Any]]:
    return [by_name[name] for by_name in checks.values()]


# -- the variants ----------------------------------------------------------------------------


def test_installed_but_not_armed_the_hostile_plugins_register_nothing(serve: Any, baseline: Any) -> None:
    served = serve("", ORCH_PLUGINS_ENABLED="sample,lint,hostile-check-hangs,hostile-check-sleeps,hostile-lint,"
                   "hostile-check-wrong-type,hostile-create-keyerror,hostile-wrong-hook")
    healthy(served)
    plugins = {p["name"]: p for p in served.status()["plugins"]}
    assert {name: (p.get("agents", []), p.get("checks", [])) for name, p in plugins.items() if "hostile" in name} == {
        name: ([], []) for name in ("hostile-check-hangs", "hostile-check-sleeps", "hostile-lint",
                                    "hostile-check-wrong-type", "hostile-create-keyerror", "hostile-wrong-hook")
    }
    assert served.status().get("failed_plugins", []) == []
    unchanged(served.checks(), baseline)


def test_a_hook_with_a_wrong_argument(serve: Any, baseline: Any) -> None:
    served = serve("hostile-wrong-hook")
    healthy(served)
    [failed] = [f for f in served.status().get("failed_plugins", []) if f["name"] == "hostile-wrong-hook"]
    assert "registry" in failed["error"]
    log = served.log.read_text()
    assert "plugin hostile-wrong-hook" in log
    assert "Traceback (most recent call last)" in log
    unchanged(served.checks(), baseline)


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ("broken-import", "ModuleNotFoundError: No module named 'orchestrator_dependency_that_is_not_installed'"),
        ("broken-register", "TypeError: register_agents registered 'not a backend', which is not a AgentBackend"),
    ],
)
def test_a_plugin_that_fails_to_import_or_register(serve: Any, baseline: Any, broken: str, error: str) -> None:
    """orchestrator-broken-plugin's entry points (not gated: they never register anything)."""
    served = serve("", ORCH_PLUGINS_ENABLED=",".join([*BASE_PLUGINS, broken]))
    healthy(served)
    [failed] = [f for f in served.status().get("failed_plugins", []) if f["name"] == broken]
    assert failed["error"] == error
    log = served.log.read_text()
    assert f"plugin {broken} 0.0.1 failed" in log
    assert "Traceback (most recent call last)" in log
    unchanged(served.checks(), baseline)


def test_create_raising_keyerror_leaves_its_council_not_ready(serve: Any, baseline: Any) -> None:
    served = serve("hostile-create-keyerror", ORCH_COUNCILS__HOSTILE__BACKEND="hostile-create-keyerror",
                   ORCH_COUNCILS__HOSTILE__AGENTS="2")
    healthy(served)
    [council] = [c for c in served.status()["councils"] if c["role"] == HOSTILE_ROLE]
    assert not council.get("ready", False)
    assert "hostile-create-keyerror" in council["detail"]
    assert "KeyError" in council["detail"]
    refused = served.deliberate(HOSTILE_ROLE)
    assert refused.returncode != 0
    assert "hostile-create-keyerror" in refused.stderr
    unchanged(served.checks(), baseline)


def test_an_agent_that_raises(serve: Any, baseline: Any) -> None:
    served = serve("hostile-agent-raises", ORCH_COUNCILS__HOSTILE__BACKEND="hostile-agent-raises",
                   ORCH_COUNCILS__HOSTILE__AGENTS="2")
    healthy(served)
    failed = served.deliberate(HOSTILE_ROLE)
    assert failed.returncode != 0
    assert "hostile-agent-raises" in failed.stderr
    healthy(served)
    assert served.plugin_failures("hostile-agent-raises")["bugs"] not in ("0", 0)
    log = served.log.read_text()
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: hostile agent failure" in log
    assert "agent_raises.py" in log
    unchanged(served.checks(), baseline)


def test_a_check_that_hangs_times_out_by_name(serve: Any, baseline: Any) -> None:
    served = serve("hostile-check-hangs", ORCH_CHECK_TIMEOUT_SECONDS="2")
    healthy(served)
    checks = served.checks()
    for result in hostile_result(checks, "hostile-hang"):
        assert not result.get("passed", False)
        [diagnostic] = result["diagnostics"]
        assert "hostile-hang" in diagnostic
        assert "did not finish within 2s" in diagnostic
    assert served.plugin_failures("hostile-hang")["timeouts"] not in ("0", 0)
    assert "hostile-hang" in served.log.read_text()
    unchanged(checks, baseline)


def test_a_check_that_blocks_the_loop_is_counted_as_a_stall(serve: Any, baseline: Any) -> None:
    served = serve("hostile-check-sleeps", ORCH_LOOP_STALL_SECONDS="1")
    healthy(served)
    checks = served.checks()
    healthy(served)
    statistics = served.status()["statistics"]
    assert int(statistics["loop_stalls"]) >= 1
    assert int(served.plugin_failures("hostile-sleep")["loop_stalls"]) >= 1
    log = served.log.read_text()
    assert "check 'hostile-sleep'" in log
    assert "check_sleeps.py" in log  # the stack of the stalled loop reaches the plugin's code
    unchanged(checks, baseline)


@pytest.mark.parametrize(
    ("hostile", "check", "error"),
    [
        ("hostile-check-wrong-type", "hostile-wrong-type", "TypeError: returned dict, not a CheckResult"),
        ("hostile-check-bad-score", "hostile-bad-score", "returned score 1.5, outside [0, 1]"),
    ],
)
def test_a_check_returning_an_unusable_result_is_a_bug_of_that_check(
    serve: Any, baseline: Any, hostile: str, check: str, error: str
) -> None:
    served = serve(hostile)
    healthy(served)
    checks = served.checks()
    for result in hostile_result(checks, check):
        assert not result.get("passed", False)
        assert result.get("score", 0.0) == 0.0
        [diagnostic] = result["diagnostics"]
        assert error in diagnostic
        assert f"check '{check}'" in diagnostic
    assert served.plugin_failures(check)["bugs"] not in ("0", 0)
    log = served.log.read_text()
    assert "Traceback (most recent call last)" in log
    assert f"check '{check}'" in log
    unchanged(checks, baseline)


def test_a_check_with_a_synchronous_run_runs_off_the_loop(serve: Any, baseline: Any) -> None:
    served = serve("hostile-check-sync-run")
    healthy(served)
    checks = served.checks()
    for result in hostile_result(checks, "hostile-sync-run"):
        assert result.get("passed", False)
        assert result["score"] == 1.0
        [where] = result["diagnostics"]
        assert where.startswith("ran on thread ")
        assert where != "ran on thread MainThread"
    unchanged(checks, baseline)


def test_a_third_party_lint_kind_check_never_displaces_the_built_in_lint(serve: Any, baseline: Any) -> None:
    served = serve("hostile-lint")
    healthy(served)
    checks = served.checks()
    for by_name in checks.values():
        assert by_name["lint"]["name"] == "lint"
        assert by_name["hostile-lint"]["kind"] == "lint"
        assert by_name["hostile-lint"]["diagnostics"] == ["hostile-lint rejects everything"]
    unchanged(checks, baseline)
