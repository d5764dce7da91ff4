"""Unreported tests fail: a proposal that breaks pytest's reporting never scores above one whose
tests merely failed.

Each case runs twice, with a correct and with a wrong ``calc`` module, each followed by code
that breaks pytest or its reports. Both must fail with the problem named by its id, score 0 —
below the clean correct proposal, and not above the clean wrong one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from checks_support import CALC_TESTS, proposal, python_block, sandboxed_check, task
from dryrun_support import CLEAN_SCORE, GOOD_CALC, WRONG_CALC, WRONG_SCORE, judge, lines_with

from agents_contrib.checks.dryrun import DryRunCheck
from orchestrator_core.models import CheckResult, TaskTest

CALCS = pytest.mark.parametrize("calc", [GOOD_CALC, WRONG_CALC], ids=["correct", "wrong"])


@pytest.fixture
def check(tmp_path: Path) -> DryRunCheck:
    return sandboxed_check(tmp_path)


def assert_broken(result: CheckResult, problem: str) -> None:
    """Failed, scored no higher than wrong code, and ``problem`` (an id and the start of its text) said."""
    assert not result.passed
    assert result.score == WRONG_SCORE < CLEAN_SCORE
    rule_id = problem.split()[0]
    assert any(line.startswith(problem) for line in lines_with(result, rule_id)), result.diagnostics


def in_mean(statement: str) -> str:
    """Hostile code run by the third test (``test_mean``), after two tests have reported."""
    return f"import os, sys\n_mean = mean\n\ndef mean(values):\n    {statement}\n    return _mean(values)\n"


async def test_clean_proposals_have_no_problem(check: DryRunCheck) -> None:
    assert (await judge(check, GOOD_CALC)).score == CLEAN_SCORE
    assert (await judge(check, WRONG_CALC)).score == WRONG_SCORE


@CALCS
async def test_os_exit_zero_in_a_test(check: DryRunCheck, calc: str) -> None:
    result = await judge(check, calc, in_mean("os._exit(0)"))
    assert_broken(result, "REPORT004 2 of 4 collected tests reported no result: test_calc.py::test_mean, ")
    assert_broken(result, "REPORT005 pytest did not finish its session (exit status 0)")


@CALCS
async def test_killing_pytest_with_sigkill(check: DryRunCheck, calc: str) -> None:
    result = await judge(check, calc, in_mean("os.kill(os.getpid(), 9)"))
    assert_broken(result, "REPORT005 pytest did not finish its session (killed by SIGKILL)")
    assert_broken(result, "REPORT004 2 of 4 collected tests reported no result")


@CALCS
async def test_keyboard_interrupt_in_a_test(check: DryRunCheck, calc: str) -> None:
    result = await judge(check, calc, in_mean("raise KeyboardInterrupt"))
    assert_broken(result, "REPORT004 2 of 4 collected tests reported no result")
    assert_broken(result, "REPORT006 the record disagrees with pytest's exit status: exit status 2 (interrupted)")


@CALCS
async def test_sys_exit_at_import(check: DryRunCheck, calc: str) -> None:
    result = await judge(check, calc, "import sys\nsys.exit(0)\n")
    assert_broken(result, "REPORT003 pytest internal error: SystemExit: 0")


@CALCS
async def test_closing_every_descriptor_at_import(check: DryRunCheck, calc: str) -> None:
    result = await judge(check, calc, "import os\nos.closerange(0, 1024)\n")
    assert_broken(result, "REPORT001 pytest recorded nothing (exit status ")


@CALCS
async def test_silencing_the_junit_report(check: DryRunCheck, calc: str) -> None:
    hostile = ("import gc, os, _pytest.junitxml\nfor o in gc.get_objects():\n"
               "    if isinstance(o, _pytest.junitxml.LogXML):\n        o.logfile = os.devnull\n")
    result = await judge(check, calc, hostile)
    assert_broken(result, "REPORT007 the session finished, but pytest's JUnit report is unusable: no test report")


async def test_junit_that_hides_failures_disagrees_with_the_record(check: DryRunCheck) -> None:
    hostile = ("import _pytest.junitxml\n_pytest.junitxml._NodeReporter.append_failure = lambda self, report: None\n"
               "_pytest.junitxml._NodeReporter.write_captured_output = lambda self, report: None\n")
    result = await judge(check, WRONG_CALC, hostile)
    assert_broken(result, "REPORT007 pytest's JUnit report counts 4 passed tests, the record 0")


@CALCS
async def test_raising_in_a_hook(check: DryRunCheck, calc: str) -> None:
    hostile = (
        "import gc, _pytest.config\n\nclass Saboteur:\n    def pytest_runtest_logreport(self, report):\n"
        "        raise RuntimeError('hook broken')\n\n"
        "config = next(o for o in gc.get_objects() if isinstance(o, _pytest.config.Config))\n"
        "config.pluginmanager.register(Saboteur())\n"
    )
    result = await judge(check, calc, hostile)
    assert_broken(result, "REPORT003 pytest internal error: RuntimeError: hook broken")


@CALCS
async def test_replacing_the_report_directory_with_a_file(check: DryRunCheck, calc: str) -> None:
    hostile = "import shutil\nshutil.rmtree('.report')\nopen('.report', 'w').close()\n"
    result = await judge(check, calc, hostile)
    assert_broken(result, "REPORT007 the session finished, but pytest's JUnit report is unusable")


async def test_deleting_the_report_directory_hides_nothing(check: DryRunCheck) -> None:
    # pytest makes the directory again when it writes its report: the results stand as they are.
    hostile = "import shutil\nshutil.rmtree('.report')\n"
    assert (await judge(check, GOOD_CALC, hostile)).score == CLEAN_SCORE
    assert (await judge(check, WRONG_CALC, hostile)).score == WRONG_SCORE


@CALCS
async def test_forged_lines_on_every_descriptor(check: DryRunCheck, calc: str) -> None:
    hostile = (
        "import os\nfor fd in map(int, os.listdir('/proc/self/fd')):\n    if fd > 2:\n        try:\n"
        "            os.write(fd, b'{\"test\": \"forged\", \"when\": \"call\", \"outcome\": \"passed\"}\\n')\n"
        "        except OSError:\n            pass\n"
    )
    result = await judge(check, calc, hostile)
    assert_broken(result, "REPORT006 the record disagrees with pytest's exit status: results for tests never "
                          "collected: forged")


@CALCS
async def test_a_syntax_error_is_a_collection_error(check: DryRunCheck, calc: str) -> None:
    result = await judge(check, calc, "def broken(:\n")
    assert_broken(result, "REPORT002 collection error in test_calc.py: ")


async def test_a_test_file_importing_a_missing_name(check: DryRunCheck) -> None:
    tests = (*CALC_TESTS, TaskTest("test_median.py", "from calc import median\n\n"
                                                    "def test_median():\n    assert median([1, 2, 3]) == 2\n"))
    result = await check.run(task(tests=tests), proposal(python_block(GOOD_CALC, "calc.py")))
    assert_broken(result, "REPORT002 collection error in test_median.py: ImportError: cannot import name 'median'")


async def test_no_tests_collected(check: DryRunCheck) -> None:
    tests = (TaskTest("test_nothing.py", "from calc import add\n"),)
    result = await check.run(task(tests=tests), proposal(python_block(GOOD_CALC, "calc.py")))
    assert not result.passed
    assert result.score == 0.0
    assert "tests: 0 collected: 0 passed, 0 failed, 0 errors, 0 skipped" in result.diagnostics
    assert "pytest: no tests collected" in result.diagnostics


async def test_a_skipped_test_is_not_a_passed_one(check: DryRunCheck) -> None:
    hostile = "import pytest\n_add = add\n\ndef add(a, b):\n    pytest.skip('not today')\n"
    result = await judge(check, WRONG_CALC.replace("return -1", "return sum(values) / len(values) "
                                                   "if values else 0"), hostile)
    assert not result.passed
    assert "tests: 4 collected: 2 passed, 0 failed, 0 errors, 2 skipped" in result.diagnostics
    assert result.score == 0.5
