"""The dry-run check: the task's tests against the proposal's code, in the sandbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from checks_support import (
    CALC_GOOD,
    CALC_HALF,
    CALC_TESTS,
    CALC_WRONG,
    processes_mentioning,
    proposal,
    python_block,
    sample,
    sandbox_dirs,
    sandboxed_check,
    task,
)

from agents_contrib.checks.dryrun import DryRunCheck
from agents_contrib.checks.settings import DryRunSettings
from orchestrator_core.deliberation import DeliberationEngine
from orchestrator_core.models import TaskTest
from orchestrator_core.scoring import Scorer
from orchestrator_core.testing import ScriptedAgent


@pytest.fixture
def check(tmp_path: Path) -> DryRunCheck:
    return sandboxed_check(tmp_path)


async def test_code_that_passes_the_tasks_tests_scores_one(check: DryRunCheck) -> None:
    result = await check.run(task(tests=CALC_TESTS), proposal(CALC_GOOD))
    assert (result.name, result.kind, result.passed, result.score) == ("dryrun", "dryrun", True, 1.0)
    assert result.diagnostics[0] == check.isolation.describe(check.settings)
    assert result.diagnostics[1:] == (
        "artifact 1 (python) written as calc.py (imported by the tests)",
        "artifact 2 (python) written as solution.py",
        "ran the task's tests: test_calc.py",
        "tests: 4 collected: 4 passed, 0 failed, 0 errors, 0 skipped",
    )
    assert check.heavy is True


async def test_the_score_is_the_pass_ratio_and_failures_are_explained(check: DryRunCheck) -> None:
    result = await check.run(task(tests=CALC_TESTS), proposal(CALC_HALF))
    assert not result.passed
    assert result.score == 0.75
    assert "tests: 4 collected: 3 passed, 1 failed, 0 errors, 0 skipped" in result.diagnostics
    failure = next(line for line in result.diagnostics if line.startswith("FAILED "))
    assert failure.startswith("FAILED test_calc.py::test_mean_empty_is_zero: ZeroDivisionError")


async def test_wrong_code_scores_zero(check: DryRunCheck) -> None:
    result = await check.run(task(tests=CALC_TESTS), proposal(CALC_WRONG))
    assert not result.passed
    assert result.score == 0.0
    assert "tests: 4 collected: 0 passed, 4 failed, 0 errors, 0 skipped" in result.diagnostics


async def test_without_tests_the_modules_must_import(check: DryRunCheck) -> None:
    good = await check.run(task(), proposal(python_block(sample("good.py.txt"), "stats.py")))
    assert good.passed
    assert "ran imports of the proposal's modules: test_proposal_imports.py" in good.diagnostics
    broken = await check.run(task(), proposal(python_block(sample("good.py.txt"), "stats.py")
                                              + python_block(sample("syntax_error.py.txt"), "broken.py")))
    assert not broken.passed
    assert broken.score == 0.5
    assert any(line.startswith("FAILED test_proposal_imports.py::test_module_imports[broken.py]: ")
               for line in broken.diagnostics)


async def test_nothing_to_run_is_a_failure_that_says_so(check: DryRunCheck) -> None:
    result = await check.run(task(), proposal("```sql\nselect 1;\n```\n"))
    assert not result.passed
    assert result.diagnostics[-1] == "nothing to run: the task has no tests and the proposal no Python code"


async def test_a_proposal_cannot_bring_its_own_tests_or_pytest_configuration(check: DryRunCheck) -> None:
    content = (CALC_WRONG + python_block("import pytest\n\ndef pytest_collection_modifyitems(items):\n"
                                         "    items.clear()\n", "conftest.py")
               + python_block("def test_extra():\n    assert True\n", "test_extra.py"))
    result = await check.run(task(tests=CALC_TESTS), proposal(content))
    assert result.score == 0.0
    assert "artifact 2 (python, conftest.py) not written: a proposal may not configure pytest" in result.diagnostics
    assert "tests: 4 collected: 0 passed, 4 failed, 0 errors, 0 skipped" in result.diagnostics


async def test_task_tests_outside_the_directory_are_refused(check: DryRunCheck) -> None:
    tests = (*CALC_TESTS, TaskTest("../escape.py", "x = 1\n"), TaskTest("/etc/evil.py", "x = 1\n"))
    result = await check.run(task(tests=tests), proposal(CALC_GOOD))
    assert result.passed
    assert "task test '../escape.py' skipped: not a relative path inside the directory" in result.diagnostics
    assert "task test '/etc/evil.py' skipped: not a relative path inside the directory" in result.diagnostics


async def test_named_files_and_tests_in_subdirectories(check: DryRunCheck) -> None:
    tests = (TaskTest("tests/test_shapes.py", "from geometry.shapes import area\n\n"
                      "def test_area():\n    assert area(2, 3) == 6\n"),)
    content = (python_block("", "geometry/__init__.py").replace("\n\n", "\n# package\n")
               + python_block("def area(w, h):\n    return w * h\n", "geometry/shapes.py"))
    result = await check.run(task(tests=tests), proposal(content))
    assert result.passed, result.diagnostics


async def test_a_dry_run_beside_a_running_one_does_not_wait_for_it(tmp_path: Path) -> None:
    """The check queues nothing (its callers bound it), so no part of a caller's timeout goes to
    waiting in it: the run started second finishes while the first still runs."""
    check = sandboxed_check(tmp_path, concurrency=1, timeout_seconds=300.0)
    sleeper = (TaskTest("test_sleep.py", "import time\n\ndef test_sleep():\n    time.sleep(600)\n"),)
    first = asyncio.create_task(check.run(task(tests=sleeper), proposal(CALC_GOOD)))
    work = str(tmp_path / "work")
    while not processes_mentioning(work):
        assert not first.done()
        await asyncio.sleep(0.05)

    second = asyncio.create_task(check.run(task(tests=CALC_TESTS), proposal(CALC_GOOD, "p2")))
    done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)

    assert done == {second}
    assert second.result().passed, second.result().diagnostics
    assert check.peak_running == 2
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert check.running == 0
    assert sandbox_dirs(tmp_path / "work") == []


async def test_in_the_engine_the_heavy_check_slots_bound_the_dry_runs(tmp_path: Path) -> None:
    check = sandboxed_check(tmp_path)
    engine = DeliberationEngine(checks=[check], scorer=Scorer(), heavy_check_slots=asyncio.Semaphore(1))
    agents = [ScriptedAgent(f"dev-{i}", proposal=CALC_GOOD + "#" * i) for i in range(3)]

    outcome = await engine.deliberate(task(tests=CALC_TESTS), agents, rounds=0)

    assert [result.checks[0].passed for result in outcome.results] == [True, True, True]
    assert check.peak_running == 1


async def test_the_loop_stays_free_and_cancellation_kills_the_sandbox(check: DryRunCheck, tmp_path: Path) -> None:
    sleeper = (TaskTest("test_sleep.py", "import time\n\ndef test_sleep():\n    time.sleep(600)\n"),)
    run = asyncio.create_task(check.run(task(tests=sleeper), proposal(CALC_GOOD)))
    work = str(tmp_path / "work")
    while not processes_mentioning(work):  # this loop turning proves the event loop is not blocked
        assert not run.done()
        await asyncio.sleep(0.05)
    assert check.running == 1
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert processes_mentioning(work) == []
    assert sandbox_dirs(tmp_path / "work") == []
    assert check.running == 0


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DRYRUN_TIMEOUT_SECONDS", "12.5")
    monkeypatch.setenv("ORCH_DRYRUN_CONCURRENCY", "4")
    monkeypatch.setenv("ORCH_DRYRUN_ISOLATION", "unshare")
    settings = DryRunSettings()
    assert (settings.timeout_seconds, settings.concurrency, settings.isolation) == (12.5, 4, "unshare")
    monkeypatch.setenv("ORCH_DRYRUN_CONDUCT_PENALTY", "0.25")
    monkeypatch.setenv("ORCH_DRYRUN_CONDUCT_VETO", "1")
    assert (DryRunSettings().conduct_penalty, DryRunSettings().conduct_veto) == (0.25, True)
    monkeypatch.setenv("ORCH_DRYRUN_CONDUCT_PENALTY", "0")
    with pytest.raises(ValueError, match="conduct_penalty"):
        DryRunSettings()
    monkeypatch.setenv("ORCH_DRYRUN_CONDUCT_PENALTY", "0.5")
    monkeypatch.setenv("ORCH_DRYRUN_ISOLATION", "docker")
    with pytest.raises(ValueError, match="isolation"):
        DryRunSettings()


async def test_pytest_plugins_are_loaded_only_when_named(tmp_path: Path) -> None:
    async_tests = (TaskTest("test_async.py", "import pytest\nfrom calc import add\n\n@pytest.mark.asyncio\n"
                            "async def test_add():\n    assert add(1, 1) == 2\n"),)
    without = sandboxed_check(tmp_path)
    skipped = await without.run(task(tests=async_tests), proposal(CALC_GOOD))
    assert not skipped.passed  # pytest cannot run an async test without the plugin
    named = sandboxed_check(tmp_path, pytest_plugins=["pytest_asyncio.plugin"])
    result = await named.run(task(tests=async_tests), proposal(CALC_GOOD))
    assert result.passed, result.diagnostics
    assert "tests: 1 collected: 1 passed, 0 failed, 0 errors, 0 skipped" in result.diagnostics
