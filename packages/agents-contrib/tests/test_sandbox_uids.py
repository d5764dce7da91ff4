"""Dry-runs at once cannot eat each other's process budget: a uid of its own per run.

RLIMIT_NPROC counts every process of a uid on the machine; with one shared uid, concurrent
runs — and any other program running as that uid — would push a correct proposal over the
limit. Each run takes a uid from a pool, locked (``flock``) so that neither another run of
this process nor another service process on the machine holds it at the same time.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from checks_support import (
    processes_of_pool,
    proposal,
    python_block,
    sandboxed_check,
    task,
)
from dryrun_support import GOOD_CALC, lines_with

from agents_contrib.checks.sandbox_uids import UidPool, UidPoolError
from agents_contrib.checks.settings import DryRunSettings
from orchestrator_core.models import TaskTest

OLD_SHARED_UID = 65534
"""``nobody``, which every dry-run used to share with the machine's other programs."""

HOLD_LOCK = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
             "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\nsys.stdin.read()\n")

CHILDREN_TESTS = (TaskTest(
    "test_calc.py",
    "import subprocess\n\nfrom calc import add, mean\n\n\n"
    "def test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_add_in_subprocesses():\n"
    "    children = [subprocess.Popen(['sleep', '1']) for _ in range(2)]\n"
    "    assert [child.wait() for child in children] == [0, 0]\n    assert add(-1, 1) == 0\n\n\n"
    "def test_mean():\n    assert mean([1, 2, 3]) == 2\n"),)
"""Three tests, one of which runs two processes at once beside pytest's."""

FORK_BOMB = ("import os\n_add = add\n\ndef add(a, b):\n    while True:\n        if os.fork() == 0:\n"
             "            import time; time.sleep(60)\n")


@contextmanager
def held_by_another_process(lock_file: Path) -> Iterator[None]:
    """The lock of one uid held by a process of its own, as another replica would hold it."""
    lock_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock_file)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()


@contextmanager
def processes_held_by(count: int, uid: int | None) -> Iterator[None]:
    """``count`` sleeping processes of ``uid`` (the service's own uid if None)."""
    sleepers = [subprocess.Popen(["sleep", "300"], user=uid, group=uid) for _ in range(count)]
    try:
        yield
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


def test_the_pool_has_concurrency_uids_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (DryRunSettings().sandbox_uid, DryRunSettings().sandbox_uid_count) == (70000, 2)
    assert DryRunSettings(concurrency=4).sandbox_uid_count == 4
    monkeypatch.setenv("ORCH_DRYRUN_SANDBOX_UID", "200000")
    monkeypatch.setenv("ORCH_DRYRUN_SANDBOX_UID_COUNT", "8")
    pool = UidPool.from_settings(DryRunSettings(work_root=Path("/srv/dryrun")))
    assert (list(pool.uids), pool.lock_dir) == (list(range(200000, 200008)), Path("/srv/dryrun/.orch-dryrun-uids"))
    assert pool.describe() == "uids 200000-200007, one per run"
    monkeypatch.setenv("ORCH_DRYRUN_CONCURRENCY", "9")
    with pytest.raises(ValueError, match="must be at least concurrency"):
        DryRunSettings()


async def test_runs_at_once_hold_distinct_uids_until_they_end(tmp_path: Path) -> None:
    pool = UidPool(70000, 3, tmp_path / "locks")
    async with pool.lease() as first, pool.lease() as second, pool.lease() as third:
        assert sorted([first, second, third]) == [70000, 70001, 70002]
        assert pool.try_take() is None
    async with pool.lease() as again:
        assert again == 70000


async def test_a_uid_another_service_process_holds_is_passed_over(tmp_path: Path) -> None:
    pool = UidPool(70000, 2, tmp_path / "locks")
    with held_by_another_process(pool.lock_dir / "70000.lock"):
        async with pool.lease() as uid:
            assert uid == 70001


async def test_when_every_uid_is_held_a_run_waits_for_one(tmp_path: Path) -> None:
    pool = UidPool(70000, 1, tmp_path / "locks")
    with held_by_another_process(pool.lock_dir / "70000.lock"):
        waiting = asyncio.create_task(pool.lease().__aenter__())
        await asyncio.sleep(0.3)
        assert not waiting.done()
    assert await waiting == 70000


def test_a_lock_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    pool = UidPool(70000, 2, tmp_path / "locks")
    pool.lock_dir.mkdir()
    pool.lock_dir.chmod(0o777)
    with pytest.raises(UidPoolError, match="writable by it alone"):
        pool.try_take()


def old_shared_uid() -> int | None:
    """Where the service is root, the uid every run used to share; else the service's own,
    which bwrap's user namespace maps for the run."""
    return OLD_SHARED_UID if os.geteuid() == 0 else None


async def test_correct_runs_at_once_all_pass_under_a_small_process_limit(tmp_path: Path) -> None:
    check = sandboxed_check(tmp_path, processes=8, concurrency=4, timeout_seconds=30.0)
    settings = check.settings
    code = proposal(python_block(GOOD_CALC, "calc.py"))
    with processes_held_by(settings.processes, old_shared_uid()):
        results = await asyncio.gather(*(check.run(task(tests=CHILDREN_TESTS), code) for _ in range(4)))
    for result in results:
        assert result.passed, result.diagnostics
        assert "tests: 3 collected: 3 passed, 0 failed, 0 errors, 0 skipped" in result.diagnostics
    assert check.peak_running == 4
    assert processes_of_pool(settings) == []
    assert check.uids.try_take() is not None  # every lease was given back


async def test_a_fork_bomb_hits_its_own_limit_while_a_correct_run_passes(tmp_path: Path) -> None:
    check = sandboxed_check(tmp_path, processes=8, concurrency=2, timeout_seconds=30.0)
    settings = check.settings
    with processes_held_by(settings.processes, old_shared_uid()):
        bomb, correct = await asyncio.gather(
            check.run(task(tests=CHILDREN_TESTS), proposal(python_block(GOOD_CALC + "\n\n" + FORK_BOMB, "calc.py"))),
            check.run(task(tests=CHILDREN_TESTS), proposal(python_block(GOOD_CALC, "calc.py"))))
    assert correct.passed, correct.diagnostics
    assert not bomb.passed
    assert lines_with(bomb, "CONDUCT004")[0].startswith("CONDUCT004 processes limit reached in test_calc.py::test_add")
    assert processes_of_pool(settings) == []
