"""Isolation of untrusted code: which kind works on this machine, and the command that applies it.

Three levels, strongest first, probed once at startup (``auto``):

``bwrap``
    bubblewrap: new network, pid, ipc and uts namespaces; a new root holding, read-only,
    only the system's programs and libraries, a few files of ``/etc`` and the interpreter
    with its packages; the sandbox directory writable; a private ``/tmp``. The service's
    files, homes, ``/run`` and ``/var`` (and the Unix sockets in them) are not there.
``unshare``
    util-linux ``unshare``: new network, pid (with its own ``/proc``), ipc and uts
    namespaces; the filesystem is shared, so the unprivileged user below is what keeps
    the code from writing outside its directory (``auto`` never takes this level as root
    without that user switch).
``none``
    resource limits and the unprivileged user only; the result says the network was open.
    ``auto`` never takes it: it takes an explicit ``ORCH_DRYRUN_ISOLATION=none``. Where
    nothing qualifies, the dryrun plugin fails to load with the reason, and the service runs
    without it.

At every level the first process (:mod:`.sandbox_launch`) sets the resource limits and,
when the service runs as root, switches to an unprivileged user, so that RLIMIT_NPROC
applies (the kernel does not count root's processes) and the service's files and
processes are out of reach. Each run takes a uid of its own from a pool
(:mod:`.sandbox_uids`), as RLIMIT_NPROC counts every process of a uid on the machine; when
the service is not root, bwrap and unshare put each run in a user namespace of its own,
where the kernel (5.14 or later) counts the run's processes alone. The probe runs the real
command, with a uid of the pool, so a level is used only if Python and pytest start inside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from agents_contrib.checks.sandbox_uids import UidPool, UidPoolError
from agents_contrib.checks.settings import DryRunSettings

log = logging.getLogger(__name__)

LAUNCHER_SOURCE = (Path(__file__).with_name("sandbox_launch.py")).read_text(encoding="utf-8")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
PROBE_TIMEOUT_SECONDS = 20.0

_PROBE = """
import json, os, sys
try:
    import pytest  # noqa: F401
    has_pytest = True
except Exception:
    has_pytest = False
with open("/proc/net/dev") as f:
    interfaces = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
escaped = False
try:
    with open(sys.argv[1], "w") as f:
        f.write("x")
    escaped = True
except OSError:
    pass
print(json.dumps({"uid": os.getuid(), "pytest": has_pytest, "interfaces": interfaces,
                  "pid": os.getpid(), "wrote_outside": escaped}))
"""


class SandboxUnavailable(RuntimeError):
    """The isolation the settings ask for does not work on this machine."""


@dataclass(frozen=True)
class Isolation:
    """A working isolation level and what it protects."""

    level: str
    network_isolated: bool
    pid_namespace: bool
    filesystem_isolated: bool
    uid: int | None
    """The uid the code runs as, None when the user is not switched. A probed isolation holds
    the first uid of the pool; each run gets its own copy with a uid of the pool (:meth:`as_user`)."""
    prefix: tuple[str, ...] = ()
    exposed: tuple[str, ...] = field(default=(), repr=False)

    @property
    def process_limit_enforced(self) -> bool:
        """RLIMIT_NPROC binds only an unprivileged user."""
        return self.uid is not None or os.geteuid() != 0

    def as_user(self, uid: int) -> Isolation:
        """This isolation running the code as ``uid``, when it switches users at all."""
        return self if self.uid is None else dataclasses.replace(self, uid=uid)

    def describe(self, settings: DryRunSettings) -> str:
        parts = [self.level]
        parts.append("network namespace" if self.network_isolated else "NO network namespace available")
        if self.pid_namespace:
            parts.append("pid namespace")
        parts.append("read-only filesystem outside the sandbox" if self.filesystem_isolated
                     else "shared filesystem")
        if self.uid is not None:
            parts.append(UidPool.from_settings(settings).describe())
        elif os.geteuid() == 0:
            parts.append("runs as root: RLIMIT_NPROC not enforced")
        limits = (f"rlimits cpu {settings.cpu_seconds}s, as {settings.memory_bytes // 2**20}MiB, "
                  f"fsize {settings.file_bytes // 2**20}MiB, nofile {settings.open_files}, "
                  f"nproc {settings.processes}")
        return f"isolation: {', '.join(parts)}; {limits}"

    def command(self, workdir: Path, argv: list[str], settings: DryRunSettings,
                conduct_fd: int | None = None) -> list[str]:
        """The full command line running ``argv`` in ``workdir`` under this isolation.

        ``conduct_fd``, if given, is where the first process reports what the command left
        behind (see :mod:`.sandbox_launch`); the command itself never holds it.
        """
        env = scrubbed_env(workdir)
        if not settings.pytest_autoload:
            env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        private = self.level == "bwrap"
        config = {"limits": rlimits(settings), "uid": self.uid, "cwd": str(workdir), "env": env,
                  "conduct_fd": conduct_fd, "pid_namespace": self.pid_namespace,
                  "private_dirs": list(PRIVATE_DIRS) if private else [],
                  "private_expected": self._mount_points(workdir) if private else []}
        launch = [sys.executable, "-I", "-S", "-c", LAUNCHER_SOURCE, json.dumps(config), *argv]
        if self.level == "bwrap":
            return [*self.prefix, *self._bwrap_mounts(workdir), "--", *launch]
        return [*self.prefix, *launch]

    def _mount_points(self, workdir: Path) -> list[str]:
        """Entries bwrap itself makes in the private directories: the way to the mounts below."""
        paths = [workdir, *(Path(p) for p in self.exposed)]
        return sorted({str(p) for path in paths for p in (path, *path.parents)
                       if any(p.parent == Path(d) for d in PRIVATE_DIRS)})

    def _bwrap_mounts(self, workdir: Path) -> list[str]:
        """A new root holding only what Python and pytest need, read-only: the system's
        programs and libraries, a few files of /etc, the interpreter and its packages. The
        service's files, its home, /run and /var (with their Unix sockets, e.g. a database's)
        are not there at all."""
        mounts: list[str] = []
        for directory in SYSTEM_DIRS:
            path = Path(directory)
            if path.is_symlink():
                mounts += ["--symlink", os.readlink(path), directory]
            elif path.is_dir():
                mounts += ["--ro-bind", directory, directory]
        for name in ETC_ENTRIES:
            if Path("/etc", name).exists():
                mounts += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        mounts += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        created: set[Path] = {Path("/"), Path("/tmp")}

        def traversable(path: Path) -> list[str]:
            # Directories bwrap creates in the new root are made traversable, or the
            # unprivileged user could not reach what is mounted below them.
            steps: list[str] = []
            for parent in reversed(path.parents):
                if parent not in created and not _under_system_dir(parent):
                    created.add(parent)
                    steps += ["--perms", "0755", "--dir", str(parent)]
            return steps

        for exposed in self.exposed:
            mounts += [*traversable(Path(exposed)), "--ro-bind", exposed, exposed]
        return [*mounts, *traversable(workdir), "--bind", str(workdir), str(workdir), "--chdir", str(workdir)]


PRIVATE_DIRS = ("/tmp", "/dev/shm")
"""Writable directories bwrap gives the sandbox alone: whatever is left in them was written
outside the working directory."""
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group",
               "nsswitch.conf", "ssl", "hosts")


def _under_system_dir(path: Path) -> bool:
    return any(path == Path(d) or path.is_relative_to(d) for d in (*SYSTEM_DIRS, "/etc"))


def rlimits(settings: DryRunSettings) -> dict[str, int]:
    return {
        "RLIMIT_CPU": settings.cpu_seconds,
        "RLIMIT_AS": settings.memory_bytes,
        "RLIMIT_FSIZE": settings.file_bytes,
        "RLIMIT_NOFILE": settings.open_files,
        "RLIMIT_NPROC": settings.processes,
        "RLIMIT_CORE": 0,
    }


def scrubbed_env(workdir: Path) -> dict[str, str]:
    """The whole environment of sandboxed code: nothing of the service's reaches it."""
    return {
        "PATH": SAFE_PATH,
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONUNBUFFERED": "1",
    }


def _candidates(settings: DryRunSettings) -> list[Isolation]:
    root = os.geteuid() == 0
    uids: list[int | None] = [settings.sandbox_uid, None] if root else [None]
    levels = ["bwrap", "unshare"] if settings.isolation == "auto" else [settings.isolation]
    exposed = _interpreter_paths()
    found: list[Isolation] = []
    for level in levels:
        for uid in uids:
            if level == "bwrap" and shutil.which("bwrap"):
                prefix = ["bwrap", "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid",
                          "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
                if not root:
                    prefix.append("--unshare-user")
                found.append(Isolation("bwrap", True, True, True, uid, tuple(prefix), exposed))
            elif level == "unshare" and shutil.which("unshare"):
                if root and uid is None and settings.isolation == "auto":
                    continue  # root on the shared filesystem: only an explicit choice may accept it
                prefix = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts"]
                if not root:
                    prefix[1:1] = ["--user", "--map-root-user"]
                found.append(Isolation("unshare", True, True, False, uid, tuple(prefix)))
            elif level == "none" and settings.isolation == "none":
                # Without namespaces the code shares the machine's network and processes, and a
                # process that leaves the group can outlive the run: ``auto`` never settles for
                # that; an operator may, by naming ``none`` explicitly.
                found.append(Isolation("none", False, False, False, uid))
    return found


def _interpreter_paths() -> tuple[str, ...]:
    """Where the interpreter, its standard library and its packages live, outside the system
    directories bwrap mounts anyway (a pyenv under a home, a virtual environment, a source
    checkout installed in editable mode)."""
    needed = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, Path(sys.executable).parent.parent)}
    needed |= {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                           Path(sys.executable).resolve().parent.parent)}
    needed |= {Path(p).resolve() for p in sys.path if p and Path(p).is_dir()}
    return tuple(_outermost(sorted(str(p) for p in needed if p != Path("/") and not _under_system_dir(p))))


def _outermost(paths: list[str]) -> list[str]:
    kept: list[str] = []
    for path in sorted(paths):
        if not any(Path(path).is_relative_to(parent) for parent in kept):
            kept.append(path)
    return kept


def detect_isolation(settings: DryRunSettings) -> Isolation:
    """The strongest isolation that works here (blocking; called once at startup)."""
    failures: list[str] = []
    for candidate in _candidates(settings):
        problem = _probe(candidate, settings)
        if problem is None:
            log.info("dryrun sandbox: %s", candidate.describe(settings))
            return candidate
        failures.append(f"{candidate.level} (uid {candidate.uid}): {problem}")
        log.debug("dryrun sandbox candidate %s rejected: %s", candidate.level, problem)
    raise SandboxUnavailable(
        f"no sandbox usable for ORCH_DRYRUN_ISOLATION={settings.isolation}: " + "; ".join(failures or ["not installed"])
    )


def _probe(candidate: Isolation, settings: DryRunSettings) -> str | None:
    """What keeps the candidate from working, None when it works; run as a uid of the pool."""
    if candidate.uid is None:
        return _probe_as(candidate, settings)
    try:
        with UidPool.from_settings(settings).lease_blocking(PROBE_TIMEOUT_SECONDS) as uid:
            return _probe_as(candidate.as_user(uid), settings)
    except (OSError, UidPoolError) as exc:
        return f"uid pool: {exc}"


def _probe_as(candidate: Isolation, settings: DryRunSettings) -> str | None:
    workdir = make_workdir(settings, candidate.uid)
    outside = Path(tempfile.gettempdir()) / f"orch-sandbox-probe-{secrets.token_hex(8)}"
    try:
        argv = [sys.executable, "-I", "-c", _PROBE, str(outside)]
        try:
            done = subprocess.run(candidate.command(workdir, argv, settings), capture_output=True,
                                  timeout=PROBE_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL,
                                  env=scrubbed_env(workdir), cwd=workdir, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        if done.returncode != 0:
            return f"exit {done.returncode}: {done.stderr.decode(errors='replace').strip()[-300:]}"
        report = json.loads(done.stdout.decode().strip().splitlines()[-1])
        if not report["pytest"]:
            return "pytest cannot be imported inside"
        if candidate.network_isolated and report["interfaces"] != ["lo"]:
            return f"network interfaces visible: {report['interfaces']}"
        if candidate.uid is not None and report["uid"] != candidate.uid:
            return f"still uid {report['uid']}"
        if candidate.filesystem_isolated and outside.exists():
            return "wrote outside the sandbox"
        return None
    finally:
        outside.unlink(missing_ok=True)
        remove_workdir(workdir)


def make_workdir(settings: DryRunSettings, uid: int | None) -> Path:
    """A fresh directory only the sandbox's user may use (blocking: create it off the loop)."""
    base = settings.work_root or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="orch-dryrun-", dir=base))
    if uid is not None:
        os.chown(workdir, uid, uid)
    return workdir


def remove_workdir(workdir: Path) -> None:
    """Remove the directory whatever the code did to its modes (blocking)."""

    def _writable_and_retry(function: object, path: str, _: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
        if callable(function):
            with contextlib.suppress(OSError):
                function(path)

    shutil.rmtree(workdir, onerror=_writable_and_retry)
