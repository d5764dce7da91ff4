"""Run one command in the sandbox: bounded time, bounded output, the whole process group killed.

The child leads its own session (so its process group is its own); on timeout,
cancellation or an output flood the group is killed with SIGKILL and the child awaited.
With a pid namespace, the death of its first process also kills every process inside,
including any that left the group.

Besides its output, the run has side channels: in-memory files (``memfd``) whose
descriptors are passed into the sandbox and read by the service once every process inside
is gone — the first process's record of what was left behind, and any the caller opens
(the dry-run's pytest record). Nothing of them is in the sandbox's directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agents_contrib.checks.sandbox import Isolation, scrubbed_env
from agents_contrib.checks.settings import DryRunSettings
from orchestrator_core.text import inert

READ_CHUNK = 64 * 1024


MAX_CHANNEL_BYTES = 4 * 1024 * 1024


class Channel:
    """An in-memory file the sandbox writes through an inherited descriptor (Linux memfd)."""

    def __init__(self, name: str) -> None:
        self.fd = os.memfd_create(name)  # close-on-exec here; passed into the sandbox explicitly

    def read(self) -> tuple[bytes, bool]:
        """Everything written, up to :data:`MAX_CHANNEL_BYTES`, and whether there was more."""
        data = os.pread(self.fd, MAX_CHANNEL_BYTES + 1, 0)
        return data[:MAX_CHANNEL_BYTES], len(data) > MAX_CHANNEL_BYTES

    def close(self) -> None:
        os.close(self.fd)


@contextlib.contextmanager
def open_channel(name: str) -> Iterator[Channel]:
    channel = Channel(name)
    try:
        yield channel
    finally:
        channel.close()


@dataclass(frozen=True)
class LauncherRecord:
    """What the sandbox's first process saw once the command had exited (see ``sandbox_launch``)."""

    leftover: int = 0
    """Processes still running when the command exited (then killed)."""
    commands: tuple[str, ...] = ()
    cpu_seconds: float = 0.0
    """CPU time of the command's process."""
    private_entries: tuple[str, ...] = ()
    """Files left in the sandbox's private ``/tmp`` or ``/dev/shm``."""
    private_total: int = 0

    @classmethod
    def parse(cls, data: bytes) -> LauncherRecord | None:
        """None when the first process wrote nothing (it was killed: timeout, flood, cancel)."""
        try:
            raw = json.loads(data.decode("utf-8").strip().splitlines()[0])
            return cls(int(raw["leftover"]), tuple(str(c) for c in raw["commands"]), float(raw["cpu_seconds"]),
                       tuple(str(e) for e in raw["private_entries"]), int(raw["private_total"]))
        except (ValueError, KeyError, TypeError, IndexError):
            return None


@dataclass(frozen=True)
class RunOutcome:
    returncode: int | None
    timed_out: bool
    flooded: bool
    head: bytes
    tail: bytes
    output_total: int
    """Bytes printed in all; only the head and the tail are kept."""
    launcher: LauncherRecord | None = field(default=None)

    @property
    def exit_status(self) -> int | None:
        """The status the command exited with (``128 + n`` if signal n killed it), None if killed from here."""
        return self.returncode if self.returncode is not None and self.returncode >= 0 else None

    @property
    def signal_name(self) -> str:
        """The signal that ended the run, if one did (bwrap reports it as 128 + n)."""
        code = self.returncode
        if code is None:
            return ""
        number = -code if code < 0 else code - 128 if 128 < code < 160 else 0
        if not number:
            return ""
        try:
            return signal.Signals(number).name
        except ValueError:
            return f"signal {number}"

    def output_text(self) -> str:
        """The output kept, as text; control characters are written out (``\\x1b``), so a
        terminal that shows it does not act on them."""
        kept = len(self.head) + len(self.tail)
        if self.output_total <= kept:
            return inert((self.head + self.tail).decode("utf-8", errors="replace"))
        return (inert(self.head.decode("utf-8", errors="replace"))
                + f"\n[... {self.output_total - kept} of {self.output_total} bytes left out ...]\n"
                + inert(self.tail.decode("utf-8", errors="replace")))


KILL_SETTLE_SECONDS = 5.0


async def run_sandboxed(isolation: Isolation, workdir: Path, argv: list[str], settings: DryRunSettings,
                        pass_fds: Sequence[int] = ()) -> RunOutcome:
    """Run ``argv`` under ``isolation`` in ``workdir``; never leaves a process behind.

    ``pass_fds`` are descriptors the command inherits (e.g. a :class:`Channel`'s).
    The output goes through a pipe of our own rather than asyncio's: asyncio (3.11) reports
    a child's exit only once its pipes are closed, and a process that stopped being read
    must not hold the service waiting.
    """
    with open_channel("orch-sandbox-conduct") as conduct:
        outcome = await _run(isolation, workdir, argv, settings, [*pass_fds, conduct.fd], conduct.fd)
        data, _ = await asyncio.to_thread(conduct.read)
    return RunOutcome(outcome.returncode, outcome.timed_out, outcome.flooded, outcome.head, outcome.tail,
                      outcome.output_total, LauncherRecord.parse(data))


async def _run(isolation: Isolation, workdir: Path, argv: list[str], settings: DryRunSettings,
               pass_fds: list[int], conduct_fd: int) -> RunOutcome:
    read_fd, write_fd = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *isolation.command(workdir, argv, settings, conduct_fd),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            cwd=workdir,
            env=scrubbed_env(workdir),
            start_new_session=True,
            pass_fds=pass_fds,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_CHUNK)
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0))
    except BaseException:
        await _kill_group(process, leftovers_possible=True)
        raise
    head = bytearray()
    tail = bytearray()
    half = settings.output_bytes // 2
    total = 0
    timed_out = flooded = False
    try:
        async with asyncio.timeout(settings.timeout_seconds):
            while chunk := await reader.read(READ_CHUNK):
                total += len(chunk)
                if len(head) < half:
                    taken = half - len(head)
                    head += chunk[:taken]
                    chunk = chunk[taken:]
                tail = (tail + chunk)[-half:]
                if total > settings.max_output_bytes:
                    flooded = True
                    break
            if not flooded:
                await process.wait()
    except TimeoutError:
        timed_out = True
    finally:
        await _kill_group(process, leftovers_possible=not isolation.pid_namespace)
        await _until_every_writer_is_gone(reader)
        transport.close()
    return RunOutcome(process.returncode, timed_out, flooded, bytes(head), bytes(tail), total)


async def _until_every_writer_is_gone(reader: asyncio.StreamReader) -> None:
    """Discard output until the pipe closes: every sandbox process holds its write end, so
    the close means the last of them has exited (a pid namespace dies a moment after its
    first process). Bounded, so a process stuck in the kernel cannot hold the service."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(KILL_SETTLE_SECONDS):
            while await reader.read(READ_CHUNK):
                pass


async def _kill_group(process: asyncio.subprocess.Process, *, leftovers_possible: bool) -> None:
    """Kill the child's process group and reap the child (also when the caller is cancelled).

    Once the child is reaped its group is signalled only where processes may outlive it:
    in a pid namespace they died with it, and the group id may since have been reused.
    """
    if process.returncode is None or leftovers_possible:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        # Reaping is quick once the group is dead; shield it so a second cancellation
        # cannot leave a zombie behind.
        await asyncio.shield(process.wait())
