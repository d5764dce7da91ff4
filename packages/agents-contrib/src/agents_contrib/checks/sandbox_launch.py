"""The sandbox's first process: confine a child, run the command in it, report how it ended.

This file is never imported by the service: its source is passed to ``python -I -S -c``
inside the isolation (after bwrap or unshare), so nothing runs between ``fork`` and
``exec`` in the service itself (``preexec_fn`` is unsafe with threads). Standard library
only. Arguments: a JSON configuration, then the command.

The child sets the resource limits, forbids regaining privileges, switches to the
unprivileged user and execs the command. This process stays as its parent, a child
subreaper (orphans of the command are re-parented to it, whatever session they left to),
and exits with the child's status, ``128 + n`` for a child killed by signal n, so the
service learns that the CPU limit (SIGXCPU) or the file-size limit (SIGXFSZ) stopped the run.

When the command has exited, this process writes one JSON line to the file descriptor
``conduct_fd`` — which the child closes before ``exec``, so the code under test can neither
write to it nor forge it — saying which processes were still running (then kills them), the
child's CPU time, and what was left in a private ``/tmp``.
"""

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
COMMAND_CHARS = 120
LISTED = 10
KILL_ROUNDS = 100


def confine(config: dict) -> None:  # type: ignore[type-arg]
    for name, value in config["limits"].items():
        soft = int(value)
        hard = soft + 1 if name == "RLIMIT_CPU" else soft  # SIGXCPU first, SIGKILL a second later
        resource.setrlimit(getattr(resource, name), (soft, hard))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    uid = config.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.umask(0o077)
    os.chdir(config["cwd"])


def descendants() -> dict[int, str]:
    """Living processes below this one, each with its command line (zombies are not living)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and fields[0] != b"Z":
            parents[int(entry)] = int(fields[1])
    me = os.getpid()
    found: dict[int, str] = {}
    for pid in parents:
        ancestor, steps = parents.get(pid), 0
        while ancestor is not None and ancestor != me and steps < len(parents):
            ancestor, steps = parents.get(ancestor), steps + 1
        if ancestor == me:
            found[pid] = command_of(pid)
    return found


def command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read(4096).split(b"\0")
    except OSError:
        return "?"
    text = " ".join(word.decode(errors="replace") for word in words if word)
    return text[:COMMAND_CHARS] or "?"


def reap_orphans() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_all() -> None:
    """SIGKILL every descendant, round after round, until none is left (a fork bomb refills)."""
    for _ in range(KILL_ROUNDS):
        reap_orphans()
        living = descendants()
        if not living:
            return
        for pid in living:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def leftover_entries(directories: list, expected: list) -> list:  # type: ignore[type-arg]
    """Entries of the private directories, but for the mount points bwrap made there."""
    entries = []
    for directory in directories:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        entries += [os.path.join(directory, name) for name in names]
    return [entry for entry in entries if entry not in expected]


def main() -> None:
    config = json.loads(sys.argv[1])
    command = sys.argv[2:]
    conduct_fd = config.get("conduct_fd")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    child = os.fork()
    if child == 0:
        try:
            if conduct_fd is not None:
                os.close(conduct_fd)
            confine(config)
            os.execve(command[0], command, config["env"])
        except BaseException as exc:  # report anything, then leave at once
            os.write(2, f"sandbox: cannot start {command[0]}: {exc}\n".encode())
        os._exit(126)
    status = 0
    cpu = 0.0
    while True:
        try:
            pid, status, usage = os.wait4(-1, 0)
        except ChildProcessError:
            break
        if pid == child:
            cpu = usage.ru_utime + usage.ru_stime
            break
    in_namespace = bool(config.get("pid_namespace"))
    if in_namespace:
        # Freeze every other process of the namespace at once (pid 1 and this one are spared)
        # before counting, so a fork bomb cannot refill while it is counted and killed.
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGSTOP)
    reap_orphans()
    left = descendants()
    if in_namespace:
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)
    kill_all()
    if conduct_fd is not None:
        entries = leftover_entries(config.get("private_dirs", []), config.get("private_expected", []))
        record = {
            "leftover": len(left),
            "commands": sorted(set(left.values()))[:LISTED],
            "cpu_seconds": round(cpu, 3),
            "private_entries": entries[:LISTED],
            "private_total": len(entries),
        }
        with contextlib.suppress(OSError):
            os.write(conduct_fd, (json.dumps(record) + "\n").encode())
    code = os.waitstatus_to_exitcode(status)
    sys.exit(128 - code if code < 0 else code)


main()
