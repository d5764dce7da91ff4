"""A pool of unprivileged uids, one per dry-run at a time, so runs cannot eat each other's process budget.

RLIMIT_NPROC counts every process of the real uid on the machine. Were all dry-runs to share
one uid, concurrent runs (and any other program running as that uid) would count against
each other's limit, and a correct proposal could fail because the machine is busy. Each run
therefore takes a uid of its own from ``ORCH_DRYRUN_SANDBOX_UID`` …
``ORCH_DRYRUN_SANDBOX_UID + ORCH_DRYRUN_SANDBOX_UID_COUNT - 1``.

A uid is held by an exclusive ``flock`` on a file of its own in ``.orch-dryrun-uids`` under
the work root. ``flock`` locks belong to an open file, so two holders in one process exclude
each other just as two service processes (replicas) sharing the work root do, and the kernel
releases the lock when its holder dies: no uid stays taken after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from agents_contrib.checks.settings import DryRunSettings

LOCK_DIR_NAME = ".orch-dryrun-uids"
RETRY_SECONDS = 0.05
"""Pause between two rounds over the pool when every uid is taken (by other replicas)."""


class UidPoolError(RuntimeError):
    """The pool's lock directory cannot be trusted, or no uid became free in time."""


@dataclass(frozen=True)
class UidPool:
    """``count`` consecutive uids from ``first``, each locked by a file in ``lock_dir``."""

    first: int
    count: int
    lock_dir: Path

    @classmethod
    def from_settings(cls, settings: DryRunSettings) -> UidPool:
        base = settings.work_root or Path(tempfile.gettempdir())
        return cls(settings.sandbox_uid, settings.sandbox_uid_count, base / LOCK_DIR_NAME)

    @property
    def uids(self) -> range:
        return range(self.first, self.first + self.count)

    def try_take(self) -> tuple[int, int] | None:
        """A free uid and the descriptor holding its lock, or None when every uid is taken.

        Blocking, but only for a few system calls (no waiting on a lock).
        """
        self._ensure_lock_dir()
        for uid in self.uids:
            fd = os.open(self.lock_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            return uid, fd
        return None

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[int]:
        """A uid no other run holds until the block ends; waits while every uid is taken."""
        # The callers of the dry-run bound its runs to no more than the pool (its concurrency),
        # so this waits only on other replicas' runs: no event of this process can say when
        # their locks go.
        while (taken := await asyncio.to_thread(self.try_take)) is None:  # noqa: ASYNC110
            await asyncio.sleep(RETRY_SECONDS)
        uid, fd = taken
        try:
            yield uid
        finally:
            os.close(fd)  # releases the lock

    @contextlib.contextmanager
    def lease_blocking(self, timeout: float) -> Iterator[int]:
        """:meth:`lease` for the startup probe; fails when no uid frees within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (taken := self.try_take()) is None:
            if time.monotonic() > deadline:
                raise UidPoolError(f"every uid of {self.describe()} stayed in use for {timeout:g}s")
            time.sleep(RETRY_SECONDS)
        uid, fd = taken
        try:
            yield uid
        finally:
            os.close(fd)

    def describe(self) -> str:
        if self.count == 1:
            return f"uid {self.first}"
        return f"uids {self.first}-{self.first + self.count - 1}, one per run"

    def _ensure_lock_dir(self) -> None:
        """The lock directory, made private to the service's user; refused if anyone else could
        have made or changed it (e.g. under a shared ``/tmp``)."""
        self.lock_dir.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            self.lock_dir.mkdir(mode=0o700)
        info = os.lstat(self.lock_dir)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise UidPoolError(f"{self.lock_dir} is not a directory of this user writable by it alone")
