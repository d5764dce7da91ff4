"""The loop watchdog's overhead: instant deliberations (scripted agents and checks) with the
watchdog on and off, alternating in the same run, and the CPU it costs an idle loop.
``python bench/run.py --only-watchdog`` writes its section of BENCHMARKS.md."""

from __future__ import annotations

import asyncio
import statistics
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


def run(batches: int = 10, deliberations: int = 200) -> dict[str, float]:
    found = asyncio.run(measure(batches, deliberations))
    idle = {watching: asyncio.run(idle_cpu_seconds(10.0, watching)) for watching in (False, True)}
    off, on = statistics.median(found["off"]), statistics.median(found["on"])
    return {
        "batches": batches, "deliberations": deliberations, "off_ms": off * 1e3, "on_ms": on * 1e3,
        "ratio": on / off,
        "paired_ratio": statistics.median(a / b for a, b in zip(found["on"], found["off"], strict=True)),
        "idle_off_ms": idle[False] * 1e3, "idle_on_ms": idle[True] * 1e3,
        "idle_core_percent": (idle[True] - idle[False]) / 10 * 100,
    }


def markdown(f: dict[str, float]) -> list[str]:
    return [
        "## The loop watchdog",
        "",
        f"Instant deliberations (3 scripted agents, 1 round, 3 scripted checks) in one process, "
        f"{f['batches']:.0f} batches of {f['deliberations']:.0f}",
        f"with the watchdog (`ORCH_LOOP_STALL_SECONDS={STALL_SECONDS}`) off and on, alternating; and the",
        "CPU an idle event loop costs over 10 s, every thread of the process counted.",
        "",
        "| | watchdog off | watchdog on | on / off |",
        "| --- | --- | --- | --- |",
        f"| per deliberation (median of batches) | {f['off_ms']:.3f} ms | {f['on_ms']:.3f} ms | "
        f"{f['ratio']:.3f} (paired batches: {f['paired_ratio']:.3f}) |",
        f"| idle loop, CPU per 10 s | {f['idle_off_ms']:.1f} ms | {f['idle_on_ms']:.1f} ms | "
        f"{f['idle_core_percent']:.2f} % of one core |",
        "",
        "The watchdog is a thread that asks the loop for a reply every 0.1 s: its cost is that idle",
        "CPU, and per deliberation it is within the noise (read the paired ratio, batch against the",
        "batch beside it, when the machine is busy).",
    ]


if __name__ == "__main__":
    print("\n".join(markdown(run())))
