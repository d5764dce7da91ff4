"""Shared pieces of the checks' tests: tasks, proposals, sample files, fast sandbox settings."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from agents_contrib.checks.dryrun import DryRunCheck
from agents_contrib.checks.sandbox import Isolation, detect_isolation
from agents_contrib.checks.settings import DryRunSettings
from orchestrator_core.models import Proposal, Task, TaskConstraints, TaskTest

SAMPLES = Path(__file__).parent / "samples"

CALC_TESTS = (
    TaskTest(
        "test_calc.py",
        "from calc import add, mean\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n"
        "def test_add_negative():\n    assert add(-1, 1) == 0\n\n"
        "def test_mean():\n    assert mean([1, 2, 3]) == 2\n\n"
        "def test_mean_empty_is_zero():\n    assert mean([]) == 0\n",
    ),
)
CALC_GOOD = (
    "Here is the module.\n\n```python\n"
    "def add(a: int, b: int) -> int:\n    return a + b\n\n\n"
    "def mean(values: list[float]) -> float:\n    return sum(values) / len(values) if values else 0\n"
    "```\n\nUsage:\n\n```python\nprint(add(1, 2))\n```\n"
)
CALC_HALF = (
    "```python\n"
    "def add(a, b):\n    return a + b\n\n\n"
    "def mean(values):\n    return sum(values) / len(values)\n"
    "```\n"
)
CALC_WRONG = "```python\ndef add(a, b):\n    return a - b\n\n\ndef mean(values):\n    return -1\n```\n"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def task(*, tests: tuple[TaskTest, ...] = (), requirements: tuple[str, ...] = (),
         forbidden: tuple[str, ...] = (), role: str = "DEV") -> Task:
    return Task(role=role, description="write the module",
                constraints=TaskConstraints(requirements=requirements, forbidden=forbidden, tests=tests))


def proposal(content: str, proposal_id: str = "p1") -> Proposal:
    return Proposal(proposal_id=proposal_id, author_id="agent-1", role="DEV", content=content)


def python_block(code: str, filename: str = "") -> str:
    info = f"python {filename}".strip()
    return f"```{info}\n{code.rstrip()}\n```\n"


TEST_UIDS = 100_000 + (os.getpid() % 50_000) * 8
"""This test process's own sandbox uids: a test run beside another one on the machine (each
with its own work root, so its own uid locks) must not share uids, process limits or the
process listings the hostile tests make."""


def fast_settings(tmp_path: Path, **overrides: object) -> DryRunSettings:
    """Tight bounds, so hostile code is stopped within seconds."""
    values: dict[str, object] = {
        "sandbox_uid": TEST_UIDS,
        "sandbox_uid_count": 8,
        "timeout_seconds": 8.0,
        "cpu_seconds": 2,
        "memory_bytes": 768 * 1024 * 1024,
        "file_bytes": 4 * 1024 * 1024,
        "processes": 24,
        "output_bytes": 4096,
        "max_output_bytes": 1024 * 1024,
        "work_root": tmp_path / "work",
    }
    values.update(overrides)
    return DryRunSettings(**values)  # type: ignore[arg-type]


@functools.cache
def isolation_for(level: str) -> Isolation | None:
    """The isolation a level gives on this machine, or None when it does not work here."""
    try:
        return detect_isolation(DryRunSettings(isolation=level))  # type: ignore[arg-type]
    except RuntimeError:
        return None


def strongest_isolation() -> Isolation:
    """The isolation ``auto`` takes on this machine (every machine has one)."""
    isolation = isolation_for("auto")
    assert isolation is not None
    return isolation


def sandboxed_check(tmp_path: Path, **overrides: object) -> DryRunCheck:
    """A dry-run check at the strongest isolation, with :func:`fast_settings` and ``overrides``."""
    return DryRunCheck(fast_settings(tmp_path, **overrides), strongest_isolation())


def processes_of(uid: int) -> list[int]:
    """Pids of the processes running as ``uid``, read from /proc."""
    pids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="utf-8") as status:
                for line in status:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry.name))
                        break
        except OSError:
            continue
    return pids


def processes_of_pool(settings: DryRunSettings) -> list[int]:
    """Pids of the processes running as any uid of the sandbox's pool."""
    first = settings.sandbox_uid
    return [pid for uid in range(first, first + settings.sandbox_uid_count) for pid in processes_of(uid)]


def sandbox_dirs(work_root: Path) -> list[Path]:
    """The sandbox directories left in a work root (the pool's lock directory is not one)."""
    return [path for path in work_root.iterdir() if path.name.startswith("orch-dryrun-")]


def processes_mentioning(marker: str) -> list[int]:
    """Pids whose command line contains ``marker`` (e.g. a sandbox directory)."""
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                if marker.encode() in cmdline.read():
                    found.append(int(entry.name))
        except OSError:
            continue
    return found
