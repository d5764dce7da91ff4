"""Critical path: a council's wall time against (1 + 2R)·L and against sequential calls.

Agents answer after a fixed latency L. The engine should take (1 + 2R)·L plus a little,
while the same council run one call after another (the sequential algorithm) takes
N·(1 + 2R)·L.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence

from orchestrator_core.deliberation import DeliberationEngine
from orchestrator_core.models import Critique, Proposal, Task
from orchestrator_core.scoring import Scorer
from orchestrator_core.testing import ScriptedAgent

TASK = Task(role="DEV", description="Write a function that adds two numbers")


def council(n: int, latency: float) -> list[ScriptedAgent]:
    return [ScriptedAgent(agent_id=f"dev-{i + 1}", delay_seconds=latency) for i in range(n)]


async def sequential(agents: Sequence[ScriptedAgent], rounds: int) -> None:
    """The sequential algorithm: the same calls as the engine, one after another."""
    proposals = {a.agent_id: (await a.generate(TASK)).text for a in agents}
    for _ in range(rounds):
        feedback: dict[str, list[Critique]] = {}
        for i, critic in enumerate(agents):
            author = agents[(i + 1) % len(agents)]
            proposal = Proposal(f"{author.agent_id}-v0", author.agent_id, "DEV", proposals[author.agent_id])
            reply = await critic.critique(TASK, proposal)
            feedback.setdefault(author.agent_id, []).append(
                Critique(critic.agent_id, proposal.proposal_id, author.agent_id, reply.text, 1)
            )
        for author in agents:
            proposal = Proposal(f"{author.agent_id}-v0", author.agent_id, "DEV", proposals[author.agent_id])
            proposals[author.agent_id] = (await author.revise(TASK, proposal, feedback[author.agent_id])).text


async def measure(n: int, rounds: int, latency: float, repeats: int) -> dict[str, float]:
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=1)
    concurrent_times, sequential_times = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        await engine.deliberate(TASK, council(n, latency), rounds)
        concurrent_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        await sequential(council(n, latency), rounds)
        sequential_times.append(time.perf_counter() - started)
    wall = statistics.median(concurrent_times)
    seq = statistics.median(sequential_times)
    return {
        "wall_seconds": wall,
        "ideal_seconds": (1 + 2 * rounds) * latency,
        "over_ideal": wall / ((1 + 2 * rounds) * latency),
        "sequential_seconds": seq,
        "over_sequential": wall / seq,
    }


def run(n: int = 3, latency: float = 0.05, repeats: int = 5) -> list[tuple[int, dict[str, float]]]:
    return [(rounds, asyncio.run(measure(n, rounds, latency, repeats))) for rounds in (1, 2)]


if __name__ == "__main__":
    for rounds, figures in run():
        print(rounds, {k: round(v, 4) for k, v in figures.items()})
