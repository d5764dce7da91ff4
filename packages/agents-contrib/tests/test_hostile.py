"""Hostile proposals: each is contained by the dry-run sandbox, and the service goes on.

Every case runs hostile code as the proposal's module, imported by the task's test. After
each, the same check must still judge a good proposal correctly, no sandbox process may be
left, the sandbox directories must be gone, and nothing outside them may have changed.
The battery runs at the strongest isolation this machine has (``auto``) and again at the
``unshare`` level; where an explicitly chosen level lacks a protection a case needs, the
case asserts that every result discloses it instead of running the hostile code.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from checks_support import (
    CALC_GOOD,
    CALC_TESTS,
    fast_settings,
    isolation_for,
    processes_mentioning,
    processes_of_pool,
    proposal,
    python_block,
    sandbox_dirs,
    task,
)

from agents_contrib.checks.dryrun import DryRunCheck
from agents_contrib.checks.sandbox import Isolation
from orchestrator_core.models import CheckResult, TaskTest

HOSTILE_TEST = TaskTest("test_hostile.py", "import hostile\n\n\ndef test_run():\n    hostile.run()\n")
SECRET = "sk-orch-" + secrets.token_hex(12)
LEVELS = ["auto", "unshare"]


@pytest.fixture(params=LEVELS)
def isolation(request: pytest.FixtureRequest) -> Isolation:
    found = isolation_for(request.param)
    if found is None:
        pytest.skip(f"isolation level {request.param!r} is not available on this machine")
    return found


@pytest.fixture
def check(tmp_path: Path, isolation: Isolation) -> DryRunCheck:
    return DryRunCheck(fast_settings(tmp_path), isolation)


@contextmanager
def recording(server: socket.socket) -> Iterator[list[bytes]]:
    """Accepts connections on ``server`` in a thread, recording what reaches it; closes it after."""
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                received.append(connection.recv(1024) or b"<connected>")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server of the service's own network namespace, recording what reaches it."""
    server = socket.create_server(("127.0.0.1", 0))
    with recording(server) as received:
        yield server.getsockname()[1], received


async def run_hostile(check: DryRunCheck, code: str) -> CheckResult:
    return await check.run(task(tests=(HOSTILE_TEST,)), proposal(python_block(code)))


async def assert_service_healthy(check: DryRunCheck, tmp_path: Path, isolation: Isolation) -> None:
    """The next request is answered correctly, and the sandbox left nothing behind."""
    result = await check.run(task(tests=CALC_TESTS), proposal(CALC_GOOD))
    assert result.passed, result.diagnostics
    assert result.score == 1.0
    assert sandbox_dirs(tmp_path / "work") == []
    assert processes_mentioning(str(tmp_path / "work")) == []
    if isolation.uid is not None:
        assert processes_of_pool(check.settings) == []


def diagnostics(result: CheckResult) -> str:
    return "\n".join(result.diagnostics)


async def test_infinite_loop_is_stopped_by_the_cpu_limit(check: DryRunCheck, tmp_path: Path,
                                                          isolation: Isolation) -> None:
    result = await run_hostile(check, "def run():\n    while True:\n        pass\n")
    assert not result.passed
    assert result.score == 0.0
    assert "CONDUCT004 CPU limit of 2s reached (SIGXCPU)" in result.diagnostics
    await assert_service_healthy(check, tmp_path, isolation)


async def test_sleeping_forever_is_stopped_by_the_timeout(tmp_path: Path, isolation: Isolation) -> None:
    check = DryRunCheck(fast_settings(tmp_path, timeout_seconds=2.0), isolation)
    result = await run_hostile(check, "import time\n\ndef run():\n    time.sleep(10**6)\n")
    assert not result.passed
    assert result.score == 0.0
    assert "CONDUCT005 timed out after 2s: process group killed" in result.diagnostics
    assert "REPORT005 pytest did not finish its session (killed at the timeout)" in result.diagnostics
    await assert_service_healthy(check, tmp_path, isolation)


async def test_fork_bomb_is_bounded_by_the_process_limit(tmp_path: Path, isolation: Isolation) -> None:
    check = DryRunCheck(fast_settings(tmp_path, timeout_seconds=3.0), isolation)
    if not isolation.process_limit_enforced or isolation.uid is None:
        # Only an explicit ORCH_DRYRUN_ISOLATION gives this level (``auto`` refuses it); every
        # result then says that no process limit binds, and the bomb is not run on the machine.
        assert "runs as root: RLIMIT_NPROC not enforced" in isolation.describe(check.settings)
        return
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, len(processes_of_pool(check.settings)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = await run_hostile(
            check, "import os\n\ndef run():\n    while True:\n        try:\n            os.fork()\n"
                   "        except OSError:\n            pass\n")
    finally:
        done.set()
        watcher.join()
    assert not result.passed
    assert result.score == 0.0
    assert any(line.startswith(("CONDUCT004 CPU limit", "CONDUCT005 timed out")) for line in result.diagnostics)
    # One scan of /proc is not atomic: when pytest dies and a bomb process takes its slot,
    # both can be counted by the same scan, hence the one extra.
    assert 1 < peak <= check.settings.processes + 1
    await assert_service_healthy(check, tmp_path, isolation)


async def test_memory_bomb_is_stopped_by_a_limit(check: DryRunCheck, tmp_path: Path,
                                                 isolation: Isolation) -> None:
    # bytes(n) takes zeroed pages from calloc without touching them, so the address-space limit
    # (a MemoryError) usually comes first; on a busy machine the CPU limit (SIGXCPU) may. Either
    # way the sandbox contained the bomb.
    result = await run_hostile(check, "def run():\n    hoard = []\n    while True:\n"
                                      "        hoard.append(bytes(256 * 1024 * 1024))\n")
    assert not result.passed
    assert result.score == 0.0
    [limits] = [line for line in result.diagnostics if line.startswith("CONDUCT004 ")]
    memory = "memory limit reached in test_hostile.py::test_run" in limits
    assert memory or "CPU limit of 2s reached" in limits, result.diagnostics
    if memory:
        assert "MemoryError" in diagnostics(result)
    await assert_service_healthy(check, tmp_path, isolation)


async def test_writes_outside_the_sandbox_change_nothing(check: DryRunCheck, tmp_path: Path,
                                                         isolation: Isolation) -> None:
    if not isolation.filesystem_isolated and isolation.uid is None:
        # As above: an explicitly chosen level that discloses a shared filesystem and root.
        described = isolation.describe(check.settings)
        assert "shared filesystem" in described
        assert "runs as root" in described
        return
    token = secrets.token_hex(8)
    guarded = tmp_path / "guarded"
    guarded.mkdir()
    (guarded / "keep.txt").write_text("original")
    targets = [guarded / "keep.txt", guarded / f"new-{token}", Path("/tmp") / f"orch-escape-{token}",
               Path("/var/tmp") / f"orch-escape-{token}", Path(__file__).parent / f"escape-{token}.py"]
    code = (
        "def run():\n    failures = []\n"
        f"    for target in {[str(t) for t in targets]!r}:\n"
        "        try:\n            with open(target, 'w') as f:\n                f.write('pwned')\n"
        "        except OSError as exc:\n            failures.append(f'{target}: {exc.strerror}')\n"
        "    assert not failures, failures\n"
    )
    result = await run_hostile(check, code)
    assert not result.passed
    assert "Permission denied" in diagnostics(result) or "Read-only file system" in diagnostics(result)
    finding = next(line for line in result.diagnostics if line.startswith("CONDUCT002 "))
    assert finding.startswith("CONDUCT002 5 attempts to write outside the working directory: open ")
    assert (guarded / "keep.txt").read_text() == "original"
    assert sorted(p.name for p in guarded.iterdir()) == ["keep.txt"]
    assert not any(t.exists() for t in targets[1:])
    await assert_service_healthy(check, tmp_path, isolation)


async def test_the_services_environment_does_not_reach_the_code(
    check: DryRunCheck, tmp_path: Path, isolation: Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_OPENAI_API_KEY", SECRET)
    code = (
        "import os\n\ndef run():\n    loot = [f'{k}={v}' for k, v in os.environ.items()]\n"
        f"    for pid in ('self', '1', str(os.getppid()), '{os.getpid()}'):\n"
        "        try:\n            with open(f'/proc/{pid}/environ', 'rb') as f:\n"
        "                loot.append(f.read().decode(errors='replace'))\n"
        "        except OSError:\n            pass\n"
        f"    found = [item for item in loot if {SECRET[:8]!r} in item]\n"
        "    assert not found, found\n"
    )
    result = await run_hostile(check, code)
    assert SECRET not in diagnostics(result)
    assert result.passed, result.diagnostics  # the code looked everywhere and found nothing
    await assert_service_healthy(check, tmp_path, isolation)


async def test_network_connections_fail(check: DryRunCheck, tmp_path: Path, isolation: Isolation,
                                        listener: tuple[int, list[bytes]]) -> None:
    if not isolation.network_isolated:
        pytest.skip("no network namespace at this level")
    port, received = listener
    code = (
        "import socket\n\ndef run():\n"
        f"    with socket.create_connection(('127.0.0.1', {port}), timeout=2) as s:\n"
        "        s.sendall(b'stolen')\n"
    )
    result = await run_hostile(check, code)
    assert not result.passed
    assert "Connection refused" in diagnostics(result) or "Network is unreachable" in diagnostics(result)
    assert received == []
    await assert_service_healthy(check, tmp_path, isolation)


@pytest.fixture
def host_unix_socket() -> Iterator[tuple[Path, list[bytes]]]:
    """A Unix socket of the machine, outside any temp dir (as a database's is, in /run)."""
    path = Path("/run") / f"orch-hostile-{secrets.token_hex(6)}.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    path.chmod(0o777)  # reachable by any user, as PostgreSQL's socket is
    server.listen()
    try:
        with recording(server) as received:
            yield path, received
    finally:
        path.unlink()


async def test_unix_sockets_of_the_machine_are_out_of_reach(check: DryRunCheck, tmp_path: Path,
                                                            isolation: Isolation,
                                                            host_unix_socket: tuple[Path, list[bytes]]) -> None:
    path, received = host_unix_socket
    if not isolation.filesystem_isolated:
        # The filesystem is shared at this level: every result says so, and the socket is not tried.
        assert "shared filesystem" in isolation.describe(check.settings)
        return
    code = (
        "import socket\n\ndef run():\n"
        "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        f"    s.connect({str(path)!r})\n"
    )
    result = await run_hostile(check, code)
    assert not result.passed
    assert "No such file or directory" in diagnostics(result)
    assert received == []
    await assert_service_healthy(check, tmp_path, isolation)


@pytest.mark.parametrize("where", ["in the test", "after pytest, past its output capture"])
async def test_printing_gigabytes_is_cut_short(check: DryRunCheck, tmp_path: Path, isolation: Isolation,
                                               where: str) -> None:
    flood = "import os\n\ndef flood():\n    block = b'x' * 65536\n    while True:\n        os.write(1, block)\n"
    if where == "in the test":
        code = flood + "\ndef run():\n    flood()\n"
    else:
        code = flood + "\nimport atexit\natexit.register(flood)\n\ndef run():\n    pass\n"
    result = await run_hostile(check, code)
    assert not result.passed
    text = diagnostics(result)
    # Inside a test, pytest captures fd 1 into a file, which RLIMIT_FSIZE bounds; after the
    # session, the output reaches the service's pipe, which the output bound cuts.
    assert ("CONDUCT004 file size limit of 4194304 bytes reached (SIGXFSZ)" in result.diagnostics
            or "CONDUCT003 printed more than 1048576 bytes: process group killed" in result.diagnostics), text
    assert len(text) < 20_000
    await assert_service_healthy(check, tmp_path, isolation)


async def test_killing_its_parent_and_the_service_fails(check: DryRunCheck, tmp_path: Path,
                                                        isolation: Isolation) -> None:
    if not isolation.pid_namespace:
        pytest.skip("no pid namespace at this level: kill(-1) would reach the machine")
    code = (
        "import os, signal\n\ndef run():\n    errors = []\n"
        f"    for target in (os.getppid(), {os.getpid()}, -1):\n"
        "        try:\n            os.kill(target, signal.SIGKILL)\n"
        "        except OSError as exc:\n            errors.append(exc.strerror)\n"
        "    raise RuntimeError(f'still alive: {errors}')\n"
    )
    result = await run_hostile(check, code)
    assert not result.passed
    assert os.getppid() > 1  # this process, the service, is alive and was not orphaned
    await assert_service_healthy(check, tmp_path, isolation)

