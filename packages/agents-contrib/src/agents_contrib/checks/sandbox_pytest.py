"""pytest inside the sandbox, with a recorder of what it collected, ran and saw.

Never imported by the service: its source is passed to ``python -I -B -c`` in the sandbox,
with a JSON configuration (``report_fd``, ``workdir``) and then pytest's arguments.

Before pytest (and so the proposal's code) is imported, it installs an audit hook that
notes every attempt to write outside the working directory — ``open`` for writing,
``os.rename``/``replace``, ``os.remove``, ``os.mkdir``, ``shutil.*``… — whether or not the
sandbox then denies it. It then runs pytest with a plugin object that records the items
collected, each test phase's outcome, collection and internal errors, resource limits
seen in a test's exception and the session's exit status. Each record is one JSON line
written to ``report_fd``, a file descriptor the service opened outside the directory; it is
made non-inheritable, so the code's subprocesses do not get it.

What runs here shares a process with the code under test, which can reach and forge any of
it: the service cross-checks it against pytest's JUnit report and the process's real exit
status, which the sandbox's first process reports.
"""

import contextlib
import errno
import json
import os
import sys
import threading

CONFIG = json.loads(sys.argv[1])
REPORT_FD: int = CONFIG["report_fd"]
WORKDIR = os.path.realpath(CONFIG["workdir"])
MESSAGE_CHARS = 300
WRITES_LISTED = 20
HARMLESS_TARGETS = frozenset({"/dev/null", "/dev/zero", "/dev/full"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
# Audit events that change the filesystem, with the positions of the paths they change.
PATH_EVENTS = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.link": (1,),
    "os.symlink": (1,), "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,), "os.utime": (0,),
    "os.setxattr": (0,), "os.removexattr": (0,), "shutil.rmtree": (0,), "shutil.move": (0, 1),
    "shutil.copyfile": (1,), "shutil.copytree": (1,), "shutil.copymode": (1,), "shutil.copystat": (1,),
    "shutil.chown": (0,),
}
DIR_FD_POSITION = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 2, "os.chmod": 2, "os.chown": 3, "os.utime": 3,
                   "shutil.rmtree": 1}

os.set_inheritable(REPORT_FD, False)
_inside = threading.local()
_writes_seen: set[tuple[str, str]] = set()


def emit(record: dict) -> None:  # type: ignore[type-arg]
    with contextlib.suppress(OSError, ValueError, TypeError):
        os.write(REPORT_FD, (json.dumps(record) + "\n").encode())


def short(text: object) -> str:
    message = " ".join(str(text).split())
    return message if len(message) <= MESSAGE_CHARS else message[:MESSAGE_CHARS] + "…"


def _absolute(target: object, dir_fd: object) -> str | None:
    if isinstance(target, int) or target is None:
        return None  # an open descriptor: what it names was checked when it was opened
    path = os.fsdecode(os.fspath(target))  # type: ignore[call-overload]
    if not os.path.isabs(path):
        base = os.readlink(f"/proc/self/fd/{dir_fd}") if isinstance(dir_fd, int) else os.getcwd()
        path = os.path.join(base, path)
    return os.path.realpath(path)


def _outside(path: str) -> bool:
    return not (path == WORKDIR or path.startswith(WORKDIR + os.sep) or path in HARMLESS_TARGETS)


def _note_write(operation: str, path: str) -> None:
    key = (operation, path)
    if key in _writes_seen:
        return
    _writes_seen.add(key)
    if len(_writes_seen) <= WRITES_LISTED:
        emit({"write_outside": operation, "path": path[:MESSAGE_CHARS]})


def audit(event: str, args: tuple) -> None:  # type: ignore[type-arg]
    """Note writes outside the directory; never raises (a raising hook would deny the call)."""
    if getattr(_inside, "busy", False):
        return
    _inside.busy = True
    try:
        if event == "open":
            target, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS)
            if writes:
                path = _absolute(target, None)
                if path is not None and _outside(path):
                    _note_write("open", path)
        elif event in PATH_EVENTS:
            dir_position = DIR_FD_POSITION.get(event)
            dir_fd = args[dir_position] if dir_position is not None and len(args) > dir_position else None
            for position in PATH_EVENTS[event]:
                path = _absolute(args[position], dir_fd) if len(args) > position else None
                if path is not None and _outside(path):
                    _note_write(event, path)
    except Exception:
        pass
    finally:
        _inside.busy = False


sys.addaudithook(audit)

import pytest  # noqa: E402 - imported after the hook, so the hook sees what pytest imports


def _limit(excinfo: object) -> str:
    """The resource limit a test's exception shows, if any."""
    value = getattr(excinfo, "value", None)
    if isinstance(value, MemoryError):
        return "memory"
    if isinstance(value, OSError) and value.errno == errno.EAGAIN:
        return "processes"
    if isinstance(value, RuntimeError) and "can't start new thread" in str(value):
        return "threads"
    if isinstance(value, OSError) and value.errno in (errno.EMFILE, errno.ENFILE):
        return "open files"
    if isinstance(value, OSError) and value.errno == errno.EFBIG:
        return "file size"
    return ""


class Recorder:
    """The pytest plugin: one JSON line per fact."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        emit({"collected": [item.nodeid for item in session.items]})

    @pytest.hookimpl(tryfirst=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            emit({"collect_error": report.nodeid or ".", "message": short(_crash_message(report))})

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = {"test": report.nodeid, "when": report.when, "outcome": report.outcome}
        if report.failed:
            record["message"] = short(_crash_message(report))
        emit(record)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        limit = _limit(call.excinfo) if call.excinfo is not None else ""
        if limit:
            emit({"limit": limit, "test": item.nodeid})

    @pytest.hookimpl(tryfirst=True)
    def pytest_internalerror(self, excrepr: object, excinfo: object) -> None:
        value = getattr(excinfo, "value", None)
        emit({"internal_error": short(f"{type(value).__name__}: {value}" if value is not None else excrepr)})

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        emit({"session_exit": int(exitstatus), "threads": _other_threads()})


def _other_threads() -> int:
    """Threads of this process besides the main one (the kernel's count: native ones too)."""
    try:
        return len(os.listdir("/proc/self/task")) - 1
    except OSError:
        return threading.active_count() - 1


def _crash_message(report: object) -> str:
    longrepr = getattr(report, "longrepr", None)
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    text = str(longrepr or "")
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    return " ".join(errors) if errors else text[-MESSAGE_CHARS:]


def main() -> None:
    code = pytest.main(sys.argv[2:], plugins=[Recorder()])
    emit({"returned": int(code), "writes_outside": len(_writes_seen)})
    sys.exit(int(code))


main()
