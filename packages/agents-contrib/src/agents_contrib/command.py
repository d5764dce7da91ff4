"""The ``command`` backend: each agent call runs an operator-chosen program.

The prompt goes to the program's standard input, the reply comes from its standard
output, so any command-line model runner (``llm``, ``ollama run``, ``llama-cli``, a
script) can sit on a council. The program runs in its own process group, under a time
limit; on timeout or cancellation the whole group is killed, so no runner outlives the
call that started it. On Linux the program is also killed (SIGKILL) when the service that
started it dies, even by SIGKILL, when nothing could kill its group (``PR_SET_PDEATHSIG``,
set by a small launcher that then becomes the program). That signal reaches the program
only, not processes it started itself: a wrapper script should ``exec`` its runner, so the
runner is the program. Where ``prctl`` is not available (not Linux) a program outlives a
service that is killed outright; cancellation and timeouts still kill its group. The program's
exit status and the tail of its standard error say what went wrong when it fails.

The program gets the parent's environment without ``ORCH_*`` variables (they may hold
other backends' keys), plus the council's ``env`` option and:

- ``ORCHESTRATOR_ROLE``, ``ORCHESTRATOR_PHASE``, ``ORCHESTRATOR_AGENT_ID``,
  ``ORCHESTRATOR_AGENT_INDEX``, ``ORCHESTRATOR_COUNCIL_SIZE``;
- ``ORCHESTRATOR_SYSTEM_PROMPT``: the role's system prompt, also at the head of stdin
  unless the ``separate_system`` option is set.

A program reports no token usage, so its calls count zero tokens. Calls are not retried:
a local runner's failure is rarely transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents_contrib.backend_base import LimitedBackend
from agents_contrib.backend_errors import MalformedReply
from agents_contrib.options import effective_options
from agents_contrib.plugin_hooks import settings_hooks
from agents_contrib.prompted import PromptedAgent, strip_thinking
from agents_contrib.prompting import Prompt, PromptBook, prompt_book
from orchestrator_core.errors import AgentError, BackendRejected
from orchestrator_core.models import AgentConfig, AgentIdentity, AgentReply, Phase
from orchestrator_core.reachability import EndpointState, Reachability

ORCHESTRATOR_PLUGIN_API = ">=1.0,<2"
"""The orchestrator plugin API versions this plugin supports."""

PROGRAM_SETTING = "ORCH_COMMAND_PROGRAM"
STDERR_TAIL_CHARS = 600
_READ_CHUNK = 65536


class CommandOptions(BaseModel):
    """The options of one ``command`` agent; council options use these names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    program: str | list[str] | None = None
    """The command line: a list of arguments, or a string split as a shell would (no shell runs)."""
    timeout_seconds: float = Field(default=300.0, gt=0.0)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    separate_system: bool = False
    """True: stdin holds only the user prompt; the system prompt is in ORCHESTRATOR_SYSTEM_PROMPT."""
    max_output_bytes: int = Field(default=4 * 1024 * 1024, ge=1)
    prompts_dir: str | None = None


class CommandSettings(BaseSettings, CommandOptions):
    """Backend-wide defaults, from ``ORCH_COMMAND_*`` (e.g. ``ORCH_COMMAND_PROGRAM="llm -m gpt-4o-mini"``)."""

    model_config = SettingsConfigDict(env_prefix="ORCH_COMMAND_", extra="ignore")

    max_concurrency: int = Field(default=2, ge=1, le=256)


def _argv(program: str | list[str] | None) -> list[str]:
    if program is None:
        raise ValueError(
            f"the command backend needs a program: set the council's program option or {PROGRAM_SETTING}"
        )
    argv = shlex.split(program) if isinstance(program, str) else list(program)
    if not argv or not argv[0]:
        raise ValueError("the command backend's program is empty")
    if shutil.which(argv[0]) is None:
        raise ValueError(f"the command backend's program {argv[0]!r} is not an executable file or on PATH")
    return argv


class CommandBackend(LimitedBackend[CommandSettings]):
    """Builds ``command`` agents; at most ``ORCH_COMMAND_MAX_CONCURRENCY`` of their programs run
    at once (per event loop). Calls are not retried, so the backoff it inherits goes unused."""

    name = "command"

    settings_type = CommandSettings

    async def probe_endpoint(self, options: Mapping[str, Any]) -> Reachability:
        """Whether the program ``options`` name can still be run."""
        try:
            agent = self.create(AgentConfig("probe", "PROBE", 0, 1, options))
        except ValueError as exc:
            return Reachability(EndpointState.UNREACHABLE, str(exc))
        return await agent.probe_endpoint()

    def create(self, config: AgentConfig) -> CommandAgent:
        options = effective_options(
            CommandOptions,
            self.settings,
            config.options,
            self.name,
            {"max_concurrency": "it is backend-wide: set ORCH_COMMAND_MAX_CONCURRENCY"},
        )
        argv = _argv(options.program)
        if options.cwd is not None and not os.path.isdir(options.cwd):
            raise ValueError(f"the command backend's cwd {options.cwd!r} is not a directory")
        prompts = prompt_book(options.prompts_dir or self.prompts_dir)
        return CommandAgent(config, options, argv, prompts=prompts, backend=self)


class CommandAgent(PromptedAgent):
    def __init__(
        self,
        config: AgentConfig,
        options: CommandOptions,
        argv: list[str],
        *,
        prompts: PromptBook,
        backend: CommandBackend,
    ) -> None:
        super().__init__(config.agent_id, config.role, prompts)
        self.config = config
        self.options = options
        self.argv = argv
        self._backend = backend
        self._name = os.path.basename(argv[0])

    async def probe_endpoint(self) -> Reachability:
        """The program exists and may be executed (running it would cost a model call)."""
        program = shutil.which(self.argv[0])
        if program is None:
            return Reachability(EndpointState.UNREACHABLE,
                                f"no executable program {self.argv[0]!r}; set the council's program option")
        return Reachability(EndpointState.REACHABLE, f"{program} is executable")

    def describe(self) -> AgentIdentity:
        """The program this agent runs (its arguments left out: they may hold secrets);
        "options" when the council's options named it, else "settings" (``ORCH_COMMAND_*``)."""
        source = "options" if "program" in self.config.options else "settings"
        return AgentIdentity(endpoint=self.argv[0], source=source)

    def environment(self, prompt: Prompt, phase: Phase) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if not name.startswith("ORCH_")}
        env.update(self.options.env)
        env.update(
            {
                "ORCHESTRATOR_ROLE": self.config.role,
                "ORCHESTRATOR_PHASE": phase.value,
                "ORCHESTRATOR_AGENT_ID": self.config.agent_id,
                "ORCHESTRATOR_AGENT_INDEX": str(self.config.index),
                "ORCHESTRATOR_COUNCIL_SIZE": str(self.config.council_size),
                "ORCHESTRATOR_SYSTEM_PROMPT": prompt.system,
            }
        )
        return env

    async def complete(self, prompt: Prompt, phase: Phase) -> AgentReply:
        stdin = prompt.user if self.options.separate_system else prompt.as_text()
        async with self._backend.limit():
            status, stdout, stderr = await self._run(stdin.encode("utf-8"), self.environment(prompt, phase))
        if status != 0:
            tail = _tail(stderr)
            detail = f": {tail}" if tail else ""
            how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            raise AgentError(f"the command {self._name!r} {how}{detail}")
        text = strip_thinking(stdout.decode("utf-8", "replace")).strip()
        if not text:
            raise MalformedReply(f"the command {self._name!r} printed nothing on standard output")
        return AgentReply(text=text)

    async def _run(self, stdin: bytes, env: Mapping[str, str]) -> tuple[int, bytes, bytes]:
        # Looked up as the exec will (the program's PATH): the launcher can only report a
        # program it cannot run as a failed run.
        if shutil.which(self.argv[0], path=env.get("PATH", os.defpath)) is None:
            raise BackendRejected(
                f"the command backend cannot run {self._name!r}: it is no longer an executable file or on "
                f"PATH; check the council's program option or {PROGRAM_SETTING}"
            )
        try:
            process = await asyncio.create_subprocess_exec(
                *_launcher(), *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=dict(env),
                cwd=self.options.cwd,
                start_new_session=True,  # its own process group, so a kill reaches its children
            )
        except OSError as exc:
            raise BackendRejected(
                f"the command backend cannot run {self._name!r}: {exc.strerror or exc}; check the "
                f"council's program option or {PROGRAM_SETTING}"
            ) from None
        try:
            async with asyncio.timeout(self.options.timeout_seconds):
                stdout, stderr = await self._exchange(process, stdin)
                status = await process.wait()
        except TimeoutError:
            await _kill(process)
            raise AgentError(
                f"the command {self._name!r} did not finish within {self.options.timeout_seconds:g}s "
                f"and was killed"
            ) from None
        except BaseException:  # cancelled, or the output was too large: no runner outlives its call
            await _kill(process)
            raise
        return status, stdout, stderr

    async def _exchange(self, process: asyncio.subprocess.Process, stdin: bytes) -> tuple[bytes, bytes]:
        """Feed the prompt and read both outputs at once; the first failure stops the others."""
        limit = self.options.max_output_bytes
        try:
            async with asyncio.TaskGroup() as group:
                stdout = group.create_task(self._read(process.stdout, limit, "standard output"))
                stderr = group.create_task(self._read(process.stderr, limit, "standard error"))
                group.create_task(_feed(process.stdin, stdin))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return stdout.result(), stderr.result()

    async def _read(self, stream: asyncio.StreamReader | None, limit: int, what: str) -> bytes:
        if stream is None:  # pragma: no cover - the pipes are always requested
            return b""
        chunks: list[bytes] = []
        size = 0
        while chunk := await stream.read(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise MalformedReply(f"the command {self._name!r} wrote more than {limit} bytes on {what}")
            chunks.append(chunk)
        return b"".join(chunks)


_DIE_WITH_PARENT = """\
import ctypes, os, sys
parent, program = int(sys.argv[1]), sys.argv[2:]
ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
if os.getppid() != parent:  # the service died before the prctl: no signal will come
    os._exit(137)
try:
    os.execvp(program[0], program)  # found on the PATH of the program's environment
except OSError as exc:
    sys.stderr.write(f"cannot run {program[0]}: {exc.strerror}\\n")
    os._exit(127)
"""
"""Run in a fresh interpreter (``python -I -S -c``, about 12 ms) between the fork and the
program: has the kernel send the program SIGKILL when the service dies (``prctl`` with
``PR_SET_PDEATHSIG``, kept across the ``exec``), then becomes the program, same pid. The
kernel sends it when the thread that started the program ends: the event loop's, so a
program also ends with a loop run in a thread of its own. Not a ``preexec_fn``: Python run
in the child of a process with threads (gRPC's) between fork and exec may crash or hang
there (children killed by SIGSEGV were seen that way)."""


def _launcher() -> list[str]:
    """What runs a program, put before its command line, so that it dies with this process:
    the :data:`_DIE_WITH_PARENT` interpreter on Linux; nothing elsewhere, where ``prctl`` does
    not exist and a program outlives a service killed outright."""
    if not sys.platform.startswith("linux") or not sys.executable:
        return []
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid())]


async def _feed(stdin: asyncio.StreamWriter | None, data: bytes) -> None:
    if stdin is None:  # pragma: no cover - the pipe is always requested
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a program may not read its input
        stdin.write(data)
        await stdin.drain()
    stdin.close()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await stdin.wait_closed()


async def _kill(process: asyncio.subprocess.Process) -> None:
    # The group even when the program itself has exited: its children may still run.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()  # in case the program left its group
    await asyncio.shield(_reap(process))


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Wait for a killed program. asyncio (3.11) reports a child's exit only once its pipes
    are closed, and a pipe we stopped reading (output over the limit) is not: read both to
    their end first, boundedly, so the wait cannot hang."""

    async def drain(stream: asyncio.StreamReader | None) -> None:
        with contextlib.suppress(Exception):
            while stream is not None and await stream.read(_READ_CHUNK):
                pass

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_REAP_SECONDS):
            await asyncio.gather(drain(process.stdout), drain(process.stderr))
    await process.wait()


_REAP_SECONDS = 5.0


def _tail(stderr: bytes) -> str:
    text = " ".join(stderr.decode("utf-8", "replace").split())
    return text if len(text) <= STDERR_TAIL_CHARS else "…" + text[-STDERR_TAIL_CHARS:]


plugin_settings, register_agents_configured, register_agents = settings_hooks(
    "command", CommandSettings, CommandBackend, hook="register_agents"
)
