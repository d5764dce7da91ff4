"""An entry-point plugin for the work queue's process tests and benchmark.

``slow``: agents that take ``$QUEUE_TEST_CALL_SECONDS`` (default 0.2) per call and, just
before returning, append one line per completed call to ``$QUEUE_TEST_CALL_LOG``:
``task key, agent id, phase, round, pid`` (tab-separated; the task key is the task's first
word, so a test names each deliberation by its task). One ``write`` of a short line to a
file opened for appending: lines from concurrent processes never interleave. A task whose
text holds ``CRASH-THE-WORKER`` makes the agent end its own process (``os._exit``) in the
generate phase: a worker that dies on every delivery.

``burn``: a check that keeps the CPU busy ``$QUEUE_TEST_BURN_SECONDS`` (default 0.2) in a
thread (a CPU-bound load for the benchmark), then passes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator_core.hookspecs import RegisterAgentBackend, RegisterCheck, hookimpl
from orchestrator_core.models import AgentConfig, AgentReply, CheckResult, Critique, Phase, Proposal, Task
from orchestrator_core.testing import ScriptedAgent

CALL_LOG_ENV = "QUEUE_TEST_CALL_LOG"
CALL_SECONDS_ENV = "QUEUE_TEST_CALL_SECONDS"
BURN_SECONDS_ENV = "QUEUE_TEST_BURN_SECONDS"
CRASH_MARKER = "CRASH-THE-WORKER"


def task_key(task: Task) -> str:
    return task.description.split()[0]


@dataclass
class SlowAgent(ScriptedAgent):
    seconds: float = 0.2
    log_path: str = ""

    async def generate(self, task: Task) -> AgentReply:
        await asyncio.sleep(self.seconds)
        if CRASH_MARKER in task.description:
            os._exit(17)
        return self._logged(task, Phase.GENERATE, 0, await super().generate(task))

    async def critique(self, task: Task, proposal: Proposal) -> AgentReply:
        await asyncio.sleep(self.seconds)
        return self._logged(task, Phase.CRITIQUE, proposal.revision + 1, await super().critique(task, proposal))

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> AgentReply:
        await asyncio.sleep(self.seconds)
        round_number = feedback[0].round if feedback else proposal.revision + 1
        return self._logged(task, Phase.REVISE, round_number, await super().revise(task, proposal, feedback))

    def _logged(self, task: Task, phase: Phase, round_number: int, reply: AgentReply) -> AgentReply:
        if self.log_path:
            line = f"{task_key(task)}\t{self.agent_id}\t{phase.value}\t{round_number}\t{os.getpid()}\n"
            descriptor = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, line.encode())
            finally:
                os.close(descriptor)
        return reply


class SlowBackend:
    name = "slow"

    def create(self, config: AgentConfig) -> SlowAgent:
        return SlowAgent(
            agent_id=config.agent_id,
            seconds=float(os.environ.get(CALL_SECONDS_ENV, "0.2")),
            log_path=os.environ.get(CALL_LOG_ENV, ""),
        )


class BurnCheck:
    name = "burn"
    kind = "lint"

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        seconds = float(os.environ.get(BURN_SECONDS_ENV, "0.2"))
        await asyncio.to_thread(_burn, seconds)
        return CheckResult(name=self.name, kind=self.kind, passed=True, score=1.0)


def _burn(seconds: float) -> None:
    """Keep one core busy for ``seconds`` of this thread's CPU time."""
    start = time.thread_time()
    total = 0
    while time.thread_time() - start < seconds:
        total += sum(range(1000))


@hookimpl
def register_agents(register: RegisterAgentBackend) -> None:
    register(SlowBackend())


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    register(BurnCheck())
