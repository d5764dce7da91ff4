"""Run one command in the sandbox: bounded time, bounded output, the whole process group killed.

The child leads its own session (so its process group is its own); on timeout,
cancellation or an output flood the group is killed with SIGKILL and the child awaited.
With a pid namespace, the death of its first process also kills every process inside,
including any that left the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from agents_contrib.checks.sandbox import Isolation, scrubbed_env
from agents_contrib.checks.settings import DryRunSettings

READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RunOutcome:
    returncode: int | None
    timed_out: bool
    flooded: bool
    head: bytes
    tail: bytes
    output_total: int
    """Bytes printed in all; only the head and the tail are kept."""

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
        kept = len(self.head) + len(self.tail)
        if self.output_total <= kept:
            return (self.head + self.tail).decode("utf-8", errors="replace")
        return (self.head.decode("utf-8", errors="replace")
                + f"\n[... {self.output_total - kept} of {self.output_total} bytes left out ...]\n"
                + self.tail.decode("utf-8", errors="replace"))


KILL_SETTLE_SECONDS = 5.0


async def run_sandboxed(isolation: Isolation, workdir: Path, argv: list[str], settings: DryRunSettings) -> RunOutcome:
    """Run ``argv`` under ``isolation`` in ``workdir``; never leaves a process behind.

    The output goes through a pipe of our own rather than asyncio's: asyncio (3.11) reports
    a child's exit only once its pipes are closed, and a process that stopped being read
    must not hold the service waiting.
    """
    read_fd, write_fd = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *isolation.command(workdir, argv, settings),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            cwd=workdir,
            env=scrubbed_env(workdir),
            start_new_session=True,
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
