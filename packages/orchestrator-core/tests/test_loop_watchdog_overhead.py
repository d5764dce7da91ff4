"""The loop watchdog's overhead: instant deliberations (scripted agents and checks) with the
watchdog on and off, alternating in the same run.

Run it as a script for the figures (``python test_loop_watchdog_overhead.py [batches]
[deliberations-per-batch]``); as a test it runs a small batch of each and asserts nothing about
time, only that both modes deliberate alike.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from orchestrator_core.deliberation import DeliberationEngine
from orchestrator_core.models import Task
from orchestrator_core.scoring import Scorer
from orchestrator_core.testing import ScriptedAgent, ScriptedCheck
from orchestrator_core.watchdog import LoopWatchdog

TASK = Task(role="DEV", description="Write a function that adds two numbers")
STALL_SECONDS = 0.5
"""The default ORCH_LOOP_STALL_SECONDS."""


def _engine() -> DeliberationEngine:
    checks = (ScriptedCheck(name="policy", kind="policy"), ScriptedCheck(name="lint"), ScriptedCheck(name="dryrun"))
    return DeliberationEngine(checks=checks, scorer=Scorer(), quorum=2, agent_timeout_seconds=30)


async def _batch(engine: DeliberationEngine, deliberations: int) -> float:
    """Seconds per deliberation over ``deliberations`` run one after another."""
    started = time.perf_counter()
    for _ in range(deliberations):
        agents = [ScriptedAgent(agent_id=f"dev-{i}") for i in range(1, 4)]
        await engine.deliberate(TASK, agents, rounds=1)
    return (time.perf_counter() - started) / deliberations


async def measure(batches: int, deliberations: int) -> dict[str, list[float]]:
    """Per-deliberation seconds of each batch, watchdog off and on, alternating."""
    engine = _engine()
    await _batch(engine, deliberations)  # warm-up
    found: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(batches):
        found["off"].append(await _batch(engine, deliberations))
        watchdog = LoopWatchdog(STALL_SECONDS)
        watchdog.start()
        try:
            found["on"].append(await _batch(engine, deliberations))
        finally:
            watchdog.stop()
    return found


async def idle_cpu_seconds(seconds: float, watching: bool) -> float:
    """CPU seconds the process (every thread) spends while its loop idles for ``seconds``:
    the watchdog's own cost, whatever else the machine runs."""
    watchdog = LoopWatchdog(STALL_SECONDS) if watching else None
    if watchdog is not None:
        watchdog.start()
    try:
        started = time.process_time()
        await asyncio.sleep(seconds)
        return time.process_time() - started
    finally:
        if watchdog is not None:
            watchdog.stop()


async def test_deliberations_run_alike_with_and_without_the_watchdog() -> None:
    found = await measure(batches=1, deliberations=5)
    assert [len(found["off"]), len(found["on"])] == [1, 1]


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    deliberations = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    found = asyncio.run(measure(batches, deliberations))
    off, on = statistics.median(found["off"]), statistics.median(found["on"])
    print(f"{batches} batches of {deliberations} instant deliberations (3 agents, 1 round, 3 checks), alternating")
    print(f"watchdog off: median {off * 1e3:.3f} ms per deliberation (batches: "
          f"{', '.join(f'{x * 1e3:.3f}' for x in found['off'])})")
    print(f"watchdog on ({STALL_SECONDS}s): median {on * 1e3:.3f} ms per deliberation (batches: "
          f"{', '.join(f'{x * 1e3:.3f}' for x in found['on'])})")
    idle = {watching: asyncio.run(idle_cpu_seconds(10.0, watching)) for watching in (False, True)}
    print(f"an idle loop for 10s costs {idle[False] * 1e3:.1f} ms CPU without the watchdog, "
          f"{idle[True] * 1e3:.1f} ms with it ({(idle[True] - idle[False]) / 10 * 100:.3f}% of one core)")
    paired = statistics.median(a / b for a, b in zip(found["on"], found["off"], strict=True))
    print(f"ratio on/off: {on / off:.3f} of the medians; {paired:.3f} the median of each batch pair's")


if __name__ == "__main__":
    main()
