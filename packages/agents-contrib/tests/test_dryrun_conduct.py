"""Conduct findings: correct code that also misbehaves fails the dry-run and scores below clean code.

Each case adds hostile code to a correct ``calc`` module (run at import, or inside a
function the tests call) and asserts the finding's id and wording, that the check fails,
and that the score is strictly below the clean proposal's — by exactly the penalty where
the tests themselves all passed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from checks_support import processes_mentioning, sandboxed_check
from dryrun_support import CLEAN_SCORE, GOOD_CALC, WRONG_CALC, WRONG_SCORE, judge, lines_with

from agents_contrib.checks.dryrun import DryRunCheck
from orchestrator_core.models import CheckResult

PENALISED = CLEAN_SCORE * (1 - 0.5)
"""Four tests passed, one finding at the default penalty."""


@pytest.fixture
def check(tmp_path: Path) -> DryRunCheck:
    return sandboxed_check(tmp_path)


def assert_penalised_once(result: CheckResult, rule_id: str) -> str:
    """Every test passed, and exactly one conduct finding cost the penalty; returns it."""
    assert not result.passed
    assert "tests: 4 collected: 4 passed, 0 failed, 0 errors, 0 skipped" in result.diagnostics
    assert not [line for line in result.diagnostics if line.startswith("REPORT")], result.diagnostics
    findings = [line for line in result.diagnostics if line.startswith("CONDUCT")]
    assert len(findings) == 1, result.diagnostics
    assert findings[0].startswith(rule_id + " ")
    assert result.score == PENALISED < CLEAN_SCORE
    return findings[0]


async def test_clean_proposals_have_no_finding(check: DryRunCheck) -> None:
    clean = await judge(check, GOOD_CALC)
    wrong = await judge(check, WRONG_CALC)
    assert (clean.passed, clean.score) == (True, CLEAN_SCORE)
    assert (wrong.passed, wrong.score) == (False, WRONG_SCORE)
    for result in (clean, wrong):
        assert not [line for line in result.diagnostics if line.startswith(("CONDUCT", "REPORT"))]


DAEMONS = {
    "os.fork": "import os, time\nif os.fork() == 0:\n    time.sleep(60)\n    os._exit(0)\n",
    "Popen in a new session": "import subprocess\nsubprocess.Popen(['sleep', '61'], start_new_session=True)\n",
    "double fork": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                    "        time.sleep(60)\n    os._exit(0)\n"),
    "Popen of a detached interpreter": (
        "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
        "                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,\n"
        "                 start_new_session=True)\n"),
}


@pytest.mark.parametrize("daemon", DAEMONS)
async def test_a_process_left_running_is_found_and_killed(check: DryRunCheck, tmp_path: Path, daemon: str) -> None:
    result = await judge(check, GOOD_CALC, DAEMONS[daemon])
    finding = assert_penalised_once(result, "CONDUCT001")
    assert finding.startswith("CONDUCT001 1 process was still running when the tests finished: ")
    if daemon == "Popen in a new session":
        assert finding.endswith(": sleep 61")
    assert processes_mentioning(str(tmp_path / "work")) == []


async def test_several_processes_left_are_counted(check: DryRunCheck) -> None:
    hostile = "import subprocess\nfor _ in range(3):\n    subprocess.Popen(['sleep', '62'])\n"
    finding = assert_penalised_once(await judge(check, GOOD_CALC, hostile), "CONDUCT001")
    assert finding == "CONDUCT001 3 processes were still running when the tests finished: sleep 62"


async def test_a_thread_left_running_is_found(check: DryRunCheck) -> None:
    hostile = "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    finding = assert_penalised_once(await judge(check, GOOD_CALC, hostile), "CONDUCT001")
    assert finding == "CONDUCT001 1 thread was still running in pytest's process when the tests finished"


def attempt(statement: str) -> str:
    """Hostile code that tries ``statement`` and hides any error, so the tests still pass."""
    return f"import os, shutil\ntry:\n    {statement}\nexcept OSError:\n    pass\n"


WRITES = {
    "open in /etc": (attempt("open('/etc/orch-hostile', 'w').close()"), "open /etc/orch-hostile"),
    "open in the service's home": (attempt(f"open({str(Path.home() / 'orch-hostile')!r}, 'a').close()"),
                                   f"open {Path.home() / 'orch-hostile'}"),
    "os.open in /tmp": (attempt("os.close(os.open('/tmp/orch-hostile', os.O_WRONLY | os.O_CREAT))"),
                        "open /tmp/orch-hostile"),
    "os.rename out": (attempt("open('mine', 'w').close(); os.rename('mine', '/tmp/orch-moved')"),
                      "os.rename /tmp/orch-moved"),
    "os.replace out": (attempt("open('mine', 'w').close(); os.replace('mine', '/var/tmp/orch-moved')"),
                       "os.rename /var/tmp/orch-moved"),
    "os.remove": (attempt("os.remove('/etc/passwd')"), "os.remove /etc/passwd"),
    "os.mkdir": (attempt("os.mkdir('/tmp/orch-dir')"), "os.mkdir /tmp/orch-dir"),
    "shutil.copyfile": (attempt("open('mine', 'w').close(); shutil.copyfile('mine', '/var/tmp/orch-copy')"),
                        "shutil.copyfile /var/tmp/orch-copy"),
    "shutil.rmtree": (attempt("shutil.rmtree('/usr/share/doc')"), "shutil.rmtree /usr/share/doc"),
    "through a symlink": (attempt("os.symlink('/etc', 'etc'); open('etc/orch-hostile', 'w').close()"),
                          "open /etc/orch-hostile"),
    "by a relative path": (attempt("open('../orch-hostile', 'w').close()"), "open "),
}


@pytest.mark.parametrize("write", WRITES)
async def test_a_write_outside_the_directory_is_found_denied_or_not(check: DryRunCheck, write: str) -> None:
    hostile, shown = WRITES[write]
    finding = assert_penalised_once(await judge(check, GOOD_CALC, hostile), "CONDUCT002")
    assert " to write outside the working directory: " in finding
    assert shown in finding


async def test_writes_inside_the_directory_are_no_finding(check: DryRunCheck) -> None:
    hostile = ("import os, shutil, tempfile\nopen('notes.txt', 'w').write('x')\nos.rename('notes.txt', 'n.txt')\n"
               "os.mkdir('d')\nshutil.copyfile('n.txt', 'd/c.txt')\nshutil.rmtree('d')\nos.remove('n.txt')\n"
               "tempfile.TemporaryFile().close()\nopen(os.path.expanduser('~/home-file'), 'w').close()\n"
               "open('/dev/null', 'w').close()\n")
    result = await judge(check, GOOD_CALC, hostile)
    assert (result.passed, result.score) == (True, CLEAN_SCORE), result.diagnostics


async def test_output_beyond_what_is_kept_is_found(check: DryRunCheck) -> None:
    hostile = "import atexit, os\natexit.register(lambda: os.write(1, b'y' * 100_000))\n"
    finding = assert_penalised_once(await judge(check, GOOD_CALC, hostile), "CONDUCT003")
    assert finding.startswith("CONDUCT003 printed ")
    assert finding.endswith(" bytes, more than the 4096 kept")


async def test_a_flood_is_found_and_the_run_fails(check: DryRunCheck) -> None:
    hostile = "import atexit, os\natexit.register(lambda: [os.write(1, b'z' * 65536) for _ in iter(int, 1)])\n"
    result = await judge(check, GOOD_CALC, hostile)
    assert not result.passed
    assert lines_with(result, "CONDUCT003") == ["CONDUCT003 printed more than 1048576 bytes: process group killed"]
    assert result.score < CLEAN_SCORE


async def test_a_thread_bomb_hits_the_process_limit(check: DryRunCheck) -> None:
    hostile = ("import threading, time\n_add = add\n\ndef add(a, b):\n    while True:\n"
               "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n")
    result = await judge(check, GOOD_CALC, hostile)
    assert not result.passed
    assert lines_with(result, "CONDUCT004")[0].startswith("CONDUCT004 threads limit reached in test_calc.py::test_add")
    assert lines_with(result, "CONDUCT001")
    assert result.score == WRONG_SCORE  # two tests passed, but two findings cost all of it


@pytest.mark.parametrize("calc", [GOOD_CALC, WRONG_CALC], ids=["correct", "wrong"])
async def test_a_thread_bomb_at_import_never_scores_above_clean_code(check: DryRunCheck, calc: str) -> None:
    hostile = ("import threading, time\ntry:\n    while True:\n"
               "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
               "except RuntimeError:\n    pass\n")
    result = await judge(check, calc, hostile)
    assert not result.passed
    assert lines_with(result, "CONDUCT001")[0].endswith(" threads were still running in pytest's process when "
                                                         "the tests finished")
    assert result.score < CLEAN_SCORE
    if calc == WRONG_CALC:
        assert result.score == WRONG_SCORE


async def test_a_process_bomb_hits_the_process_limit(check: DryRunCheck) -> None:
    hostile = "import os\n_add = add\n\ndef add(a, b):\n    while True:\n        if os.fork() == 0:\n" \
              "            import time; time.sleep(60)\n"
    result = await judge(check, GOOD_CALC, hostile)
    assert not result.passed
    assert lines_with(result, "CONDUCT004")[0].startswith("CONDUCT004 processes limit reached in "
                                                          "test_calc.py::test_add")
    assert lines_with(result, "CONDUCT001")
    assert result.score == WRONG_SCORE


async def test_a_big_file_hits_the_file_size_limit(check: DryRunCheck) -> None:
    # Python ignores SIGXFSZ, so the write fails with EFBIG inside the test.
    hostile = ("_add = add\n\ndef add(a, b):\n    with open('big', 'wb') as f:\n"
               "        f.write(b'x' * 8 * 1024 * 1024)\n    return _add(a, b)\n")
    result = await judge(check, GOOD_CALC, hostile)
    assert not result.passed
    assert lines_with(result, "CONDUCT004") == ["CONDUCT004 file size limit reached in test_calc.py::test_add, "
                                                "test_calc.py::test_add_negative"]
    assert result.score == 0.5 * 0.5  # two of four tests passed, then the penalty


async def test_ignoring_sigxcpu_still_hits_the_cpu_limit(check: DryRunCheck) -> None:
    hostile = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n"
    result = await judge(check, GOOD_CALC, hostile)
    assert not result.passed
    assert lines_with(result, "CONDUCT004") == ["CONDUCT004 CPU limit of 2s reached"]
    assert lines_with(result, "REPORT001") == ["REPORT001 pytest recorded nothing (killed by SIGKILL)"]
    assert result.score == WRONG_SCORE


async def test_the_timeout_is_a_finding(tmp_path: Path) -> None:
    check = sandboxed_check(tmp_path, timeout_seconds=1.5)
    result = await judge(check, GOOD_CALC, "import time\ntime.sleep(600)\n")
    assert not result.passed
    assert lines_with(result, "CONDUCT005") == ["CONDUCT005 timed out after 1.5s: process group killed"]
    assert result.score == WRONG_SCORE


@pytest.mark.parametrize(("penalty", "veto", "score"), [(0.25, False, 0.75), (1.0, False, 0.0), (0.25, True, 0.0)])
async def test_the_settings_decide_what_a_finding_costs(tmp_path: Path, penalty: float, veto: bool,
                                                        score: float) -> None:
    check = sandboxed_check(tmp_path, conduct_penalty=penalty, conduct_veto=veto)
    result = await judge(check, GOOD_CALC, DAEMONS["Popen in a new session"])
    assert not result.passed
    assert result.score == score


async def test_each_finding_costs_the_penalty(check: DryRunCheck) -> None:
    hostile = (DAEMONS["Popen in a new session"] + attempt("open('/etc/orch-hostile', 'w').close()")
               + "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n")
    result = await judge(check, GOOD_CALC, hostile)
    assert [line.split()[0] for line in result.diagnostics if line.startswith("CONDUCT")] == ["CONDUCT001",
                                                                                           "CONDUCT002"]
    assert result.score == 0.0  # 1 x max(0, 1 - 0.5 x 2)
