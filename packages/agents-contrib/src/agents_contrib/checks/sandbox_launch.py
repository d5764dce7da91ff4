"""The sandbox's first process: apply resource limits, drop privileges, exec the command.

This file is never imported by the service: its source is passed to ``python -I -S -c``
inside the isolation (after bwrap or unshare), so the limits are set in the child alone
and nothing runs between ``fork`` and ``exec`` in the service (``preexec_fn`` is unsafe
with threads). Standard library only. Arguments: a JSON configuration, then the command.
"""

import ctypes
import json
import os
import resource
import sys


def main() -> None:
    config = json.loads(sys.argv[1])
    command = sys.argv[2:]
    for name, value in config["limits"].items():
        soft = int(value)
        hard = soft + 1 if name == "RLIMIT_CPU" else soft  # SIGXCPU first, SIGKILL a second later
        resource.setrlimit(getattr(resource, name), (soft, hard))
    # No set-user-id program may give the code back the privileges dropped below.
    PR_SET_NO_NEW_PRIVS = 38
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
    os.execve(command[0], command, config["env"])


main()
