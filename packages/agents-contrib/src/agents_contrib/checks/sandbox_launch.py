"""The sandbox's first process: confine a child, run the command in it, report how it ended.

This file is never imported by the service: its source is passed to ``python -I -S -c``
inside the isolation (after bwrap or unshare), so nothing runs between ``fork`` and
``exec`` in the service itself (``preexec_fn`` is unsafe with threads). Standard library
only. Arguments: a JSON configuration, then the command.

The child sets the resource limits, forbids regaining privileges, switches to the
unprivileged user and execs the command. This process stays as its parent (pid 1 of a
pid namespace, which code inside cannot signal), reaps orphans, and exits with the
child's status, ``128 + n`` for a child killed by signal n, so the service learns that
the CPU limit (SIGXCPU) or the file-size limit (SIGXFSZ) stopped the run.
"""

import ctypes
import json
import os
import resource
import sys

PR_SET_NO_NEW_PRIVS = 38


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


def main() -> None:
    config = json.loads(sys.argv[1])
    command = sys.argv[2:]
    child = os.fork()
    if child == 0:
        try:
            confine(config)
            os.execve(command[0], command, config["env"])
        except BaseException as exc:  # report anything, then leave at once
            os.write(2, f"sandbox: cannot start {command[0]}: {exc}\n".encode())
        os._exit(126)
    status = 0
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child:
            break
    code = os.waitstatus_to_exitcode(status)
    sys.exit(128 - code if code < 0 else code)


main()
