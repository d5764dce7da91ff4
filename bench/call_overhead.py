"""The service's own cost per deliberation, each against a floor measured in the same run.

- In process: the engine (``DeliberationEngine``, N = 3 instant agents, R = 1, no checks, no
  observer) per agent call, over the same 9 calls in 3 phases written in plain asyncio (one
  ``gather`` per phase, the same agents, the same domain objects). Target ≤ 1.5x. The floor
  line is what the engine must do per call on top of that: each call a task of a TaskGroup
  (cancelling the run cancels them all) and bounded by a timeout. A phase's calls start
  together with the same timeout, so the engine bounds them with one timer per phase
  (``SharedDeadline``), and so does the floor; the earlier floor, an ``asyncio.timeout`` per
  call, is measured beside it.
- Over gRPC: ``Deliberate`` p50 (3 instant agents, records on) over a bare ``grpc.aio`` echo
  of the same request bytes, with the records on disk and on tmpfs (``/dev/shm``), and the
  fsync alone of the same disk (write + fsync of a small file, in a loop). Target ≤ 2x on
  tmpfs; the disk figure's excess over tmpfs should be the fsync.

Variants alternate (A/B/A/B) and figures are medians, since the machine is shared.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import overhead

from orchestrator_core.deliberation import DeliberationEngine
from orchestrator_core.models import Critique, Proposal, Task
from orchestrator_core.scoring import Scorer
from orchestrator_core.testing import ScriptedAgent

AGENTS = 3
ROUNDS = 1
CALLS = AGENTS * (1 + 2 * ROUNDS)
TASK = Task(role="DEV", description="Add two numbers")
TMPFS = Path("/dev/shm")
SYNCS_PER_DELIBERATE = 2
"""SQLite's fdatasyncs per ``Deliberate`` here: its record's creation and its final write (a
run this short makes no progress write). Counted with ``strace -f -c -e trace=fdatasync,fsync``
on the process serving 100 calls: 214, of which 11 at start-up."""


def _council() -> list[ScriptedAgent]:
    return [ScriptedAgent(agent_id=f"dev-{i}") for i in range(1, AGENTS + 1)]


async def plain_flow(agents: list[ScriptedAgent]) -> list[Proposal]:
    """The same 9 calls, each phase gathered: the floor of the flow in asyncio."""
    replies = await asyncio.gather(*(agent.generate(TASK) for agent in agents))
    proposals = [
        Proposal(proposal_id=f"p{i}", author_id=agent.agent_id, role=TASK.role, content=reply.text)
        for i, (agent, reply) in enumerate(zip(agents, replies, strict=True))
    ]
    targets = [proposals[(i + 1) % len(proposals)] for i in range(len(agents))]
    critiques = await asyncio.gather(*(a.critique(TASK, p) for a, p in zip(agents, targets, strict=True)))
    feedback = {
        p.proposal_id: [Critique(a.agent_id, p.proposal_id, p.author_id, r.text, 1)]
        for a, p, r in zip(agents, targets, critiques, strict=True)
    }
    revised = await asyncio.gather(
        *(a.revise(TASK, p, feedback[p.proposal_id]) for a, p in zip(agents, proposals, strict=True))
    )
    return [
        Proposal(p.proposal_id, p.author_id, p.role, r.text, revision=1)
        for p, r in zip(proposals, revised, strict=True)
    ]


async def _flow(agents: list[ScriptedAgent], phase: Any) -> list[Proposal]:
    """The 9 calls in 3 phases, each phase's calls run by ``phase``."""
    replies = await phase([agent.generate(TASK) for agent in agents])
    proposals = [
        Proposal(proposal_id=f"p{i}", author_id=agent.agent_id, role=TASK.role, content=reply.text)
        for i, (agent, reply) in enumerate(zip(agents, replies, strict=True))
    ]
    targets = [proposals[(i + 1) % len(proposals)] for i in range(len(agents))]
    critiques = await phase([a.critique(TASK, p) for a, p in zip(agents, targets, strict=True)])
    feedback = {
        p.proposal_id: [Critique(a.agent_id, p.proposal_id, p.author_id, r.text, 1)]
        for a, p, r in zip(agents, targets, critiques, strict=True)
    }
    revised = await phase([a.revise(TASK, p, feedback[p.proposal_id]) for a, p in zip(agents, proposals, strict=True)])
    return [
        Proposal(p.proposal_id, p.author_id, p.role, r.text, revision=1)
        for p, r in zip(proposals, revised, strict=True)
    ]


async def _timer_phase(calls: list[Any]) -> list[Any]:
    """Each call a TaskGroup task; one timer for the phase cancels those still running at
    its deadline."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[Any]] = []
    timer = loop.call_at(loop.time() + 60, lambda: [t.cancel() for t in tasks if not t.done()])
    try:
        async with asyncio.TaskGroup() as group:
            tasks.extend(group.create_task(call) for call in calls)
    finally:
        timer.cancel()
    return [task.result() for task in tasks]


async def _timeout_phase(calls: list[Any]) -> list[Any]:
    """Each call a TaskGroup task under its own ``asyncio.timeout``."""

    async def bounded(call: Any) -> Any:
        async with asyncio.timeout(60):
            return await call

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(bounded(call)) for call in calls]
    return [task.result() for task in tasks]


async def guarded_flow(agents: list[ScriptedAgent]) -> list[Proposal]:
    """The floor: the plain flow with what the engine owes every call and nothing else, each
    call a task of a TaskGroup, a phase's calls bounded by one timer."""
    return await _flow(agents, _timer_phase)


async def timeout_flow(agents: list[ScriptedAgent]) -> list[Proposal]:
    """The plain flow with each call a TaskGroup task under its own ``asyncio.timeout`` (the
    floor before the engine bounded a phase with one timer)."""
    return await _flow(agents, _timeout_phase)


async def _batch(run: Any, deliberations: int) -> float:
    """Milliseconds per agent call over ``deliberations`` run one after another."""
    started = time.perf_counter()
    for _ in range(deliberations):
        await run(_council())
    return 1000 * (time.perf_counter() - started) / deliberations / CALLS


async def measure_engine(repetitions: int = 9, deliberations: int = 300) -> dict[str, float]:
    engine = DeliberationEngine(checks=(), scorer=Scorer(), quorum=2)

    async def engine_flow(agents: list[ScriptedAgent]) -> object:
        return await engine.deliberate(TASK, agents, rounds=ROUNDS)

    variants = {"plain": plain_flow, "guarded": guarded_flow, "timeouts": timeout_flow, "engine": engine_flow}
    for run in variants.values():
        await _batch(run, deliberations)  # warm-up
    batches: dict[str, list[float]] = {name: [] for name in variants}
    for repetition in range(repetitions):
        order = list(variants) if repetition % 2 == 0 else list(reversed(variants))
        for name in order:
            batches[name].append(await _batch(variants[name], deliberations))
    ms = {name: statistics.median(times) for name, times in batches.items()}
    return {
        "plain_ms_per_call": ms["plain"],
        "guarded_ms_per_call": ms["guarded"],
        "engine_ms_per_call": ms["engine"],
        "ratio": ms["engine"] / ms["plain"],
        "guarded_ratio": ms["guarded"] / ms["plain"],
        "timeouts_ms_per_call": ms["timeouts"],
        "timeouts_ratio": ms["timeouts"] / ms["plain"],
    }


async def measure_orchestrator(repetitions: int = 9, deliberations: int = 200) -> dict[str, float]:
    """In process: ``Orchestrator.deliberate`` (3 scripted agents through the plugin host, R = 1,
    records in SQLite on tmpfs) per deliberation, alternating with its own engine running the
    same council's agents alone (no record, no events). The difference is what the Orchestrator
    adds: validation, the council's agents, the record created and finished (each a durable
    write on the store's thread), finishing. Wall time and the event loop thread's CPU time."""
    from orchestrator_core.orchestrator import DeliberationRequest, Orchestrator
    from orchestrator_core.plugins import PluginHost
    from orchestrator_core.records.factory import store_from_settings
    from orchestrator_core.settings import CouncilSettings, Settings
    from orchestrator_core.testing import ScriptedBackend, ScriptedPlugin

    host = PluginHost()
    host.register(ScriptedPlugin(ScriptedBackend()), name="bench")
    host.collect()
    with tempfile.TemporaryDirectory(dir=TMPFS) as directory:
        councils = {TASK.role: CouncilSettings(backend="scripted", agents=AGENTS)}
        settings = Settings(database_path=Path(directory) / "records.sqlite3", councils=councils, selector_role="")
        orchestrator = Orchestrator(settings, host, store_from_settings(settings))
        await orchestrator.start()
        request = DeliberationRequest(TASK, rounds=ROUNDS)
        council = orchestrator.councils[TASK.role]

        async def whole() -> object:
            return await orchestrator.deliberate(request)

        async def engine() -> object:
            return await orchestrator.engine.deliberate(TASK, council.agents(AGENTS), ROUNDS, deliberation_id="x")

        variants = {"orchestrator": whole, "engine": engine}
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        try:
            for repetition in range(repetitions + 1):  # the first round warms up
                for name in variants if repetition % 2 == 0 else reversed(variants):
                    started, cpu = time.perf_counter(), time.thread_time()
                    for _ in range(deliberations):
                        await variants[name]()
                    if repetition:
                        wall_ms = 1000 * (time.perf_counter() - started) / deliberations
                        samples[name].append((wall_ms, 1000 * (time.thread_time() - cpu) / deliberations))
        finally:
            await orchestrator.close()
    figures: dict[str, float] = {}
    for name, measured in samples.items():
        figures[f"{name}_ms_per_deliberation"] = statistics.median(wall for wall, _ in measured)
        figures[f"{name}_loop_cpu_ms_per_deliberation"] = statistics.median(cpu for _, cpu in measured)
    for kind in ("ms", "loop_cpu_ms"):
        figures[f"around_engine_{kind}"] = (
            figures[f"orchestrator_{kind}_per_deliberation"] - figures[f"engine_{kind}_per_deliberation"]
        )
    return figures


def fsync_ms(directory: Path, writes: int = 300) -> float:
    """Median milliseconds of one page appended + fdatasync to a file in ``directory`` (what
    SQLite does per commit in WAL mode with ``synchronous=FULL``)."""
    samples = []
    fd, name = tempfile.mkstemp(dir=directory)
    try:
        for _ in range(writes):
            started = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        os.unlink(name)
    return 1000 * statistics.median(samples)


def sqlite_commit_ms(directory: Path, commits: int = 100) -> float:
    """Median milliseconds of one SQLite commit as the record store makes them (WAL,
    ``synchronous=FULL``, one row's 4 KiB JSON document updated) in ``directory``: its sync
    in SQLite's own pattern, set against the same on tmpfs."""
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        connection = sqlite3.connect(Path(scratch) / "commits.sqlite3", isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, document TEXT)")
            connection.execute("INSERT INTO records VALUES (1, '')")
            samples = []
            for index in range(commits):
                document = f'{{"n": {index}, "text": "{"x" * 4096}"}}'
                started = time.perf_counter()
                connection.execute("UPDATE records SET document = ? WHERE id = 1", (document,))
                samples.append(time.perf_counter() - started)
        finally:
            connection.close()
    return 1000 * statistics.median(samples)


def measure_grpc(repetitions: int = 4, calls: int = 150) -> dict[str, float]:
    """Deliberate over echo with records on disk and on tmpfs, alternating, and the disk's fsync."""
    disk_root = Path(tempfile.gettempdir())
    runs: dict[str, list[dict[str, float]]] = {"disk": [], "tmpfs": []}
    syncs = []
    commits: dict[str, list[float]] = {"disk": [], "tmpfs": []}
    for repetition in range(repetitions):
        order = ["disk", "tmpfs"] if repetition % 2 == 0 else ["tmpfs", "disk"]
        for where in order:
            root = disk_root if where == "disk" else TMPFS
            runs[where].append(asyncio.run(overhead.measure(calls=calls, warmup=20, records_root=root)))
        syncs.append(fsync_ms(disk_root, writes=100))  # the disk's sync between the runs: it varies
        commits["disk"].append(sqlite_commit_ms(disk_root))
        commits["tmpfs"].append(sqlite_commit_ms(TMPFS))
    figures: dict[str, float] = {}
    for where, measured in runs.items():
        for key in ("echo_p50_ms", "deliberate_p50_ms", "ratio_p50"):
            figures[f"{where}_{key}"] = statistics.median(m[key] for m in measured)
    figures["fsync_ms"] = statistics.median(syncs)
    for where, times in commits.items():
        figures[f"{where}_commit_ms"] = statistics.median(times)
    figures["commit_sync_ms"] = figures["disk_commit_ms"] - figures["tmpfs_commit_ms"]
    figures["disk_excess_ms"] = figures["disk_deliberate_p50_ms"] - figures["tmpfs_deliberate_p50_ms"]
    figures["calls"] = float(calls * repetitions)
    return figures


def run() -> dict[str, float]:
    return {**asyncio.run(measure_engine()), **asyncio.run(measure_orchestrator()), **measure_grpc()}


def markdown(f: dict[str, float], notes: list[str] | None = None) -> list[str]:
    return [
        "## Service cost per call",
        "",
        "Made by `python bench/run.py --only-overhead` (part of `nox -s bench`); each variant",
        "alternates with its floor (A/B/A/B) and the figures are medians of the runs.",
        "",
        "In process: `DeliberationEngine` with N = 3 instant scripted agents, R = 1, no checks, no",
        "observer, per agent call, over the same 9 calls in plain asyncio (a `gather` per phase).",
        "",
        "| flow | per agent call | ratio (target ≤ 1.5x) |",
        "| --- | --- | --- |",
        f"| plain asyncio | {f['plain_ms_per_call'] * 1000:.1f} µs | 1 |",
        f"| plain asyncio, each call a TaskGroup task, one timer per phase (the floor: what the engine owes "
        f"every call) | {f['guarded_ms_per_call'] * 1000:.1f} µs | {f['guarded_ratio']:.2f}x |",
        f"| plain asyncio, each call a TaskGroup task under its own `asyncio.timeout` "
        f"| {f['timeouts_ms_per_call'] * 1000:.1f} µs | {f['timeouts_ratio']:.2f}x |",
        f"| DeliberationEngine | {f['engine_ms_per_call'] * 1000:.1f} µs | {f['ratio']:.2f}x |",
        "",
        "`Orchestrator.deliberate` in process, the same 3 scripted agents through the plugin host,",
        "records in SQLite on tmpfs, alternating with its engine alone on the same council's agents:",
        f"{f['orchestrator_ms_per_deliberation']:.3f} ms per deliberation against "
        f"{f['engine_ms_per_deliberation']:.3f} ms, so {f['around_engine_ms']:.3f} ms around the engine",
        f"(event loop thread CPU: {f['orchestrator_loop_cpu_ms_per_deliberation']:.3f} against "
        f"{f['engine_loop_cpu_ms_per_deliberation']:.3f} ms, {f['around_engine_loop_cpu_ms']:.3f} ms; the rest",
        "of the wall time is the two record writes on the store's thread, which the loop waits for).",
        "",
        f"Over gRPC ({f['calls']:.0f} calls per variant): `Deliberate`, 3 instant agents, 1 round,",
        "records written to SQLite, over a bare `grpc.aio` echo of the same request bytes; the",
        "records on the disk (`$TMPDIR`) and on tmpfs (`/dev/shm`), and one page appended +",
        "fdatasync on the same disk alone (a WAL commit's sync).",
        "",
        "| records | echo p50 | Deliberate p50 | ratio (target ≤ 2x on tmpfs) |",
        "| --- | --- | --- | --- |",
        f"| tmpfs | {f['tmpfs_echo_p50_ms']:.2f} ms | {f['tmpfs_deliberate_p50_ms']:.2f} ms "
        f"| {f['tmpfs_ratio_p50']:.2f}x |",
        f"| disk | {f['disk_echo_p50_ms']:.2f} ms | {f['disk_deliberate_p50_ms']:.2f} ms "
        f"| {f['disk_ratio_p50']:.2f}x |",
        "",
        f"Disk over tmpfs: {f['disk_excess_ms']:.2f} ms per `Deliberate`; one page + fdatasync alone",
        f"on the same disk: {f['fsync_ms']:.3f} ms. One SQLite commit as the store makes them (WAL,",
        f"`synchronous=FULL`, a 4 KiB document): {f['disk_commit_ms']:.3f} ms on the disk,",
        f"{f['tmpfs_commit_ms']:.3f} ms on tmpfs, so its sync is {f['commit_sync_ms']:.3f} ms. A `Deliberate`",
        f"commits its record {SYNCS_PER_DELIBERATE} times, each a sync (created, finished; `strace -f -c -e",
        "trace=fdatasync` on the server: 2.03 per call over 100 calls): "
        f"{SYNCS_PER_DELIBERATE} x {f['commit_sync_ms']:.3f} = "
        f"{SYNCS_PER_DELIBERATE * f['commit_sync_ms']:.2f} ms of the {f['disk_excess_ms']:.2f} ms excess "
        f"({f['disk_excess_ms'] / f['commit_sync_ms']:.1f} commits' syncs' worth).",
        *(["", *notes] if notes else []),
    ]


def profiles(top: int = 12) -> list[str]:
    """The flat profiles (own time, share of the loop thread's samples) behind the figures:
    the engine over 3,000 deliberations, and 420 Deliberate and echo calls, records on tmpfs.
    Needs pyinstrument (``nox -s bench`` installs it)."""
    from pyinstrument import Profiler

    def shares(profiler: Profiler) -> list[str]:
        lines = profiler.output_text(unicode=False, color=False, flat=True).splitlines()
        rows = [line.split(maxsplit=1) for line in lines if line[:1].isdigit()]
        duration = profiler.last_session.duration if profiler.last_session else 1.0
        return [f"{100 * float(seconds) / duration:5.1f}% {where}" for seconds, where in rows[:top]]

    async def engine() -> Profiler:
        deliberations = DeliberationEngine(checks=(), scorer=Scorer(), quorum=2)
        for _ in range(200):  # warm-up
            await deliberations.deliberate(TASK, _council(), rounds=ROUNDS)
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        for _ in range(3000):
            await deliberations.deliberate(TASK, _council(), rounds=ROUNDS)
        profiler.stop()
        return profiler

    out = ["engine, in process:", *shares(asyncio.run(engine()))]
    profiler = Profiler(interval=0.0002, async_mode="disabled")
    profiler.start()
    asyncio.run(overhead.measure(calls=400, warmup=20, records_root=TMPFS))
    profiler.stop()
    return [*out, "", "Deliberate and echo over gRPC, records on tmpfs:", *shares(profiler)]


if __name__ == "__main__":
    import sys

    print("\n".join(profiles() if "--profile" in sys.argv[1:] else markdown(run())))
