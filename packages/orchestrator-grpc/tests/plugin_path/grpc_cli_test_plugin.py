"""An entry-point plugin for the CLI tests: the core's scripted test doubles.

The tests make it an installed plugin by writing a ``.dist-info`` directory with its entry
point (group ``orchestrator``) onto the ``PYTHONPATH`` of the processes they start.

Besides ``scripted`` it registers ``gate``, a test double whose agents hold their proposal
until the test lets them go, across processes: each agent, when called, connects to the
test's listening socket at ``$GRPC_CLI_TEST_GATE`` (host:port), so the test knows it was
called, and answers once the test closes that connection; and ``hostile``, whose agents
reply with terminal escape sequences and rich markup, for the tests that the CLI shows them
inert.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from orchestrator_core.hookspecs import RegisterAgentBackend, RegisterCheck, hookimpl
from orchestrator_core.models import AgentConfig, AgentReply, Proposal, Task
from orchestrator_core.testing import ScriptedAgent, ScriptedBackend, ScriptedCheck

GATE_ENV = "GRPC_CLI_TEST_GATE"
HOSTILE_REPLY = "\x1b]0;pwned\x07\n\x1b[2J\n[link=http://x]click[/link]\n[bold red]loud[/bold red]\u009b"


def hostile_backend() -> ScriptedBackend:
    return ScriptedBackend(name="hostile", defaults={"proposal": HOSTILE_REPLY})


@dataclass
class GatedAgent(ScriptedAgent):
    gate: str = ""
    """host:port of the test's gate."""

    async def generate(self, task: Task) -> AgentReply:
        host, port = self.gate.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            await reader.read()  # until the test closes the connection
        finally:
            writer.close()
            await writer.wait_closed()
        return await super().generate(task)


class GateBackend:
    name = "gate"

    def create(self, config: AgentConfig) -> GatedAgent:
        return GatedAgent(agent_id=config.agent_id, gate=os.environ[GATE_ENV])


@hookimpl
def register_agents(register: RegisterAgentBackend) -> None:
    register(ScriptedBackend())
    register(GateBackend())
    register(hostile_backend())


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    register(ScriptedCheck(name="lint", kind="lint"))
    register(ScriptedCheck(name="sense", kind="sense", score_of=_sense))


def _sense(proposal: Proposal) -> float:
    """Fails every proposal of a task that asks for gibberish: a council with nothing viable."""
    return 0.0 if "gibberish" in proposal.content else 1.0
