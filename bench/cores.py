"""Load over the cores: ``orchestrator serve --processes 1`` and ``2`` under concurrent load,
the client in separate processes, and the same client against a bare grpc.aio echo.

A DEV council of 3 agents (the sample plugin's backend) whose every call takes L = 200 ms,
1 round: critical path 0.6 s. Two figures, each the median of ``repeats`` runs:

- latency: 200 deliberations at once, p99 wall over the critical path (target ≤ 1.1);
- throughput: 4800 deliberations, 2400 at a time (a bound of 2400 / 0.6 s = 4000 /s, far
  above what either server reaches, so the server's CPU is what limits it, not the calls in
  flight over the critical path), 2 processes over 1 (≥ 1.7).

The records are in SQLite on disk and on tmpfs, and in PostgreSQL (``ORCH_BENCH_POSTGRES_URL``,
by default ``postgresql://postgres@127.0.0.1:5432/test``: a database of its own is made there
for each server and dropped after), the store meant for several processes on durable storage.

The client is ``bench/load.py`` in ``CLIENTS`` processes, each on ``CONNECTIONS`` connections
(``SO_REUSEPORT`` spreads connections, not calls), started together at one wall-clock time.
With 2 server processes, the busiest one's share of the server's CPU is reported: the kernel
hashes each connection to a process, so the split is seldom even.
The bare echo answers a real ``DeliberateResponse``'s bytes after 0.6 s: the client alone at
the same concurrency, to show it is not the bottleneck. Then the same echo spends the
orchestrator's CPU per call (one process, records on tmpfs, less the bare echo's) in the
orchestrator's shape, from 1 and 2 processes: what any server spending that much per call
reaches on this machine with this client, the baseline of the p99 and 2-process figures.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

import grpc
from server_process import free_port

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

HERE = Path(__file__).parent
LATENCY = 0.2
CRITICAL_PATH = 3 * LATENCY  # 1 round: generate, critique, revise
CLIENTS = 2
CONNECTIONS = 8
LATENCY_LOAD = (200, 200)  # requests, at once
THROUGHPUT_LOAD = (4800, 2400)
POSTGRES_URL = os.environ.get("ORCH_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def _started(command: list[str], env: dict[str, str], ready: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=60) or not process.stdout.readline().startswith(ready):
                raise RuntimeError(f"{command[:3]} did not start")
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _postgres_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for one server's records, dropped after; None (and the
    PostgreSQL rows left out) when there is no server at POSTGRES_URL or no psycopg."""
    try:
        import psycopg
        from psycopg import sql

        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except Exception as error:  # any reason the database is not there
        print(f"no PostgreSQL rows: {POSTGRES_URL}: {error}", file=sys.stderr)
        yield None
        return
    name = f"orchestrator_bench_load_{os.getpid()}"
    with admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            with suppress(psycopg.Error):
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _serve(processes: int, port: int, records: Path | str) -> AbstractContextManager[subprocess.Popen[str]]:
    """``records``: the SQLite file, or a ``postgresql://`` URL."""
    where = (
        {"ORCH_DATABASE_URL": records}  # the default pool: 10 connections per process, all opened at start
        if isinstance(records, str)
        else {"ORCH_DATABASE_PATH": str(records)}
    )
    env = {
        **os.environ,
        "ORCH_HOST": "127.0.0.1",
        "ORCH_PORT": str(port),
        **where,
        "ORCH_LOG_LEVEL": "WARNING",
        "ORCH_PLUGINS_ENABLED": "sample",
        "ORCH_COUNCILS__DEV__BACKEND": "sample-template",
        "ORCH_COUNCILS__DEV__AGENTS": "3",
        "ORCH_COUNCILS__DEV__OPTIONS": json.dumps({"delay_seconds": LATENCY}),
        "ORCH_MAX_CONCURRENT_DELIBERATIONS": "4000",
        "ORCH_PROCESSES": str(processes),
    }
    command = [str(Path(sys.executable).parent / "orchestrator"), "serve"]
    return _started(command, env, "orchestrator serving on ")


def _cpu_seconds(pid: int | None) -> list[float]:
    """CPU time (user + system) so far of process ``pid`` and of each of its children, in
    that order (nothing for None)."""
    if pid is None:
        return []
    pids = [pid, *(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    seconds = []
    for one in pids:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        seconds.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))  # utime, stime
    return seconds


def _postgres_cpu_seconds() -> float:
    """CPU time so far of every PostgreSQL process on this machine (its backends serve the
    records; other work on the same server is counted too)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            name, _, rest = stat.read_text().partition(") ")
            if name.endswith("(postgres"):
                fields = rest.split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _busiest_share(before: list[float], after: list[float]) -> float:
    """The busiest process's share of the CPU the processes used between the two readings
    (1 for a server of one process)."""
    used = [late - early for early, late in zip(before, after, strict=False)]
    return max(used) / sum(used) if sum(used) > 0 else 1.0


def _drive(address: str, requests: int, concurrency: int, server: int | None) -> dict[str, float | str]:
    """``requests`` calls, ``concurrency`` at a time, from CLIENTS processes started together;
    ``server``: the pid whose CPU time (its children's included) is counted per call."""
    start_at = time.time() + 2.0  # after every client has imported grpc and connected
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = _cpu_seconds(server)
    database_before = _postgres_cpu_seconds()
    clients = [
        subprocess.Popen(
            [
                sys.executable, str(HERE / "load.py"), "--address", address,
                "--requests", str(requests // CLIENTS), "--concurrency", str(concurrency // CLIENTS),
                "--connections", str(CONNECTIONS), "--start-at", str(start_at), "--rounds", "1",
            ],
            stdout=subprocess.PIPE, text=True,
        )
        for _ in range(CLIENTS)
    ]
    results = [json.loads(client.communicate(timeout=600)[0]) for client in clients]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = _cpu_seconds(server)
    database_cpu = _postgres_cpu_seconds() - database_before
    server_cpu = sum(server_after) - sum(server_before)
    walls = sorted(w for r in results for w in r["walls"])
    codes: Counter[str] = Counter()
    for r in results:
        codes.update(r["codes"])
    elapsed = max(r["ended"] for r in results) - min(r["began"] for r in results)
    client_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "throughput_per_second": codes["OK"] / elapsed,
        "wall_p50_seconds": statistics.median(walls),
        "wall_p99_seconds": walls[min(len(walls) - 1, int(0.99 * len(walls)))],
        "client_cpu_ms_per_call": client_cpu * 1000 / requests,
        "server_cpu_ms_per_call": server_cpu * 1000 / requests,
        "busiest_process_share": _busiest_share(server_before, server_after),
        "postgres_cpu_ms_per_call": database_cpu * 1000 / requests,
        "load_average": os.getloadavg()[0],  # the machine's own load: other work shares its cores
        "codes": json.dumps(dict(codes)),
    }


def _median(runs: list[dict[str, float | str]]) -> dict[str, float | str]:
    figures: dict[str, float | str] = {
        key: statistics.median(float(r[key]) for r in runs) for key in runs[0] if key != "codes"
    }
    figures["codes"] = " ".join(sorted({str(r["codes"]) for r in runs}))
    figures["p99_over_critical_path"] = float(figures["wall_p99_seconds"]) / CRITICAL_PATH
    return figures


def _measure(address: str, repeats: int, server: int | None) -> dict[str, dict[str, float | str]]:
    latency = _median([_drive(address, *LATENCY_LOAD, server) for _ in range(repeats)])
    throughput = _median([_drive(address, *THROUGHPUT_LOAD, server) for _ in range(repeats)])
    return {"latency": latency, "throughput": throughput}


MEDIA = ("disk", "tmpfs", "PostgreSQL")


@contextmanager
def _records(medium: str, scratch: str, memory: str, processes: int) -> Iterator[Path | str | None]:
    """Where a server of ``processes`` keeps its records on ``medium`` (None: not here)."""
    if medium == "PostgreSQL":
        with _postgres_database() as url:
            yield url
    else:
        yield Path(scratch if medium == "disk" else memory) / f"records-{processes}.sqlite3"


def run(
    repeats: int = 3, media: tuple[str, ...] = MEDIA, echo: bool = True
) -> dict[str, dict[str, dict[str, float | str]]]:
    figures = {}
    shm = Path("/dev/shm")
    in_memory = shm if shm.is_dir() else None
    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryDirectory(dir=in_memory) as memory:
        response = Path(scratch) / "response.bin"
        for medium in media:
            for processes in (1, 2):
                with _records(medium, scratch, memory, processes) as records:
                    if records is None:
                        continue
                    port = free_port()
                    with _serve(processes, port, records) as server:
                        address = f"127.0.0.1:{port}"
                        if not response.exists():
                            _keep_response(address, response)
                        figures[f"serve --processes {processes}, records on {medium}"] = _measure(
                            address, repeats, server.pid
                        )
        if echo:
            figures[ECHO] = _measure_echo(response, repeats)
            spent = _service_cpu_ms(figures)
            if spent is not None:
                for processes in (1, 2):
                    figures[_busy_echo(spent, processes)] = _measure_echo(response, repeats, spent, processes)
    return figures


ECHO = "bare grpc.aio echo (the client alone)"


def _busy_echo(cpu_ms: float, processes: int) -> str:
    return f"echo spending {cpu_ms:.2f} ms of CPU per call, {processes} process{'es' if processes > 1 else ''}"


def _measure_echo(
    response: Path, repeats: int, cpu_ms: float = 0.0, processes: int = 1
) -> dict[str, dict[str, float | str]]:
    """The echo server (bench/echo_server.py) under the same load: bare, or spending
    ``cpu_ms`` per call in the orchestrator's shape from ``processes`` processes."""
    port = free_port()
    command = [
        sys.executable, str(HERE / "echo_server.py"), "--port", str(port), "--response", str(response),
        "--delay", str(CRITICAL_PATH), "--cpu-ms", f"{cpu_ms:.3f}", "--phases", "3", "--processes", str(processes),
    ]
    with _started(command, dict(os.environ), "ready") as server:
        return _measure(f"127.0.0.1:{port}", repeats, server.pid)


def _service_cpu_ms(figures: dict[str, dict[str, dict[str, float | str]]]) -> float | None:
    """What the orchestrator (one process, records on tmpfs, else the first store measured)
    spends per call beyond the bare echo: the CPU the busy echo spends per call."""
    echo = figures.get(ECHO)
    served = figures.get("serve --processes 1, records on tmpfs") or next(
        (f for name, f in figures.items() if name.startswith("serve --processes 1,")), None
    )
    if echo is None or served is None:
        return None
    return max(
        0.0,
        float(served["throughput"]["server_cpu_ms_per_call"]) - float(echo["throughput"]["server_cpu_ms_per_call"]),
    )


def _keep_response(address: str, response: Path) -> None:
    """A real DeliberateResponse's bytes, for the echo to answer."""
    with grpc.insecure_channel(address) as channel:
        answer = pb_grpc.OrchestratorServiceStub(channel).Deliberate(
            pb.DeliberateRequest(role="DEV", task="Write a function that adds two numbers", rounds=1), timeout=30
        )
    response.write_bytes(answer.SerializeToString())


def _throughput(figures: dict[str, dict[str, dict[str, float | str]]], processes: int, medium: str) -> float | None:
    measured = figures.get(f"serve --processes {processes}, records on {medium}")
    return None if measured is None else float(measured["throughput"]["throughput_per_second"])


def _scaling(figures: dict[str, dict[str, dict[str, float | str]]]) -> str:
    """Throughput of 2 processes over 1, per store measured."""
    ratios = []
    for medium in MEDIA:
        one, two = _throughput(figures, 1, medium), _throughput(figures, 2, medium)
        if one and two:
            ratios.append(f"**{two / one:.2f}x** with the records {'in' if medium == 'PostgreSQL' else 'on'} {medium}")
    return ", ".join(ratios)


def _database_cpu(name: str, measured: dict[str, float | str]) -> str:
    if not name.endswith("PostgreSQL"):
        return ""
    return f" + {float(measured['postgres_cpu_ms_per_call']):.2f} ms PostgreSQL's"


def _busy_echo_lines(figures: dict[str, dict[str, dict[str, float | str]]]) -> list[str]:
    """What a server of the orchestrator's shape, spending its CPU per call and nothing else,
    reaches under the same load: the baseline of the p99 and 2-process figures."""
    busy = {name: f for name, f in figures.items() if name.startswith("echo spending ")}
    one = next((f for name, f in busy.items() if name.endswith(", 1 process")), None)
    two = next((f for name, f in busy.items() if name.endswith(", 2 processes")), None)
    if one is None or two is None:
        return []
    scaling = float(two["throughput"]["throughput_per_second"]) / float(one["throughput"]["throughput_per_second"])
    return [
        "The echo spending CPU per call (`bench/echo_server.py --cpu-ms`) is a server of the",
        "orchestrator's shape that does nothing else: the orchestrator's server CPU per call (one",
        "process, records on tmpfs) less the bare echo's, spent on the loop's thread in 4 slices",
        "(at arrival and after each of 3 waits of 0.2 s), from 1 and 2 processes on one port",
        f"(`SO_REUSEPORT`). It reaches **{scaling:.2f}x** with 2 processes over 1, and a p99 over the",
        f"critical path of {float(one['latency']['p99_over_critical_path']):.2f} (1 process) and "
        f"{float(two['latency']['p99_over_critical_path']):.2f} (2): what any server",
        "spending that much CPU per call reaches on this machine with this client.",
    ]


def markdown(figures: dict[str, dict[str, dict[str, float | str]]], notes: list[str]) -> list[str]:
    lines = [
        "## Load over the cores",
        "",
        "`python bench/run.py --only-load` (bench/cores.py): a DEV council of 3 agents (the sample",
        "plugin's backend) whose every call takes L = 200 ms, 1 round: critical path 0.6 s; records",
        "in SQLite on disk and on tmpfs, and in PostgreSQL (a local server, a database of its own per",
        f"server). The client (`bench/load.py`) runs in {CLIENTS} processes of its own, {CONNECTIONS} connections",
        "each, started together, each connection keeping its share of the calls in flight (as",
        "independent clients do); the bare echo answers a real `DeliberateResponse` after 0.6 s. Median",
        "of 3 runs. Latency: 200 at once, p99 over the critical path (target ≤ 1.1). Throughput:",
        f"{THROUGHPUT_LOAD[0]}, {THROUGHPUT_LOAD[1]} at a time (the bound {THROUGHPUT_LOAD[1]} / 0.6 s = "
        f"{THROUGHPUT_LOAD[1] / CRITICAL_PATH:.0f} /s is far above every server figure). Server CPU:",
        "the server's processes (and PostgreSQL's, given apart); busiest share: the busiest server",
        "process's share of it (the kernel spreads connections, not calls, over the processes).",
        "",
        f"| server | 200 at once: p50 | p99 | p99 / critical path | throughput ({THROUGHPUT_LOAD[1]} at a time) "
        "| server CPU per call | busiest share | client CPU per call | load average | status codes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in figures.items():
        lat, thr = f["latency"], f["throughput"]
        lines.append(
            f"| {name} | {float(lat['wall_p50_seconds']):.3f} s | {float(lat['wall_p99_seconds']):.3f} s | "
            f"{float(lat['p99_over_critical_path']):.2f} | {float(thr['throughput_per_second']):.0f} /s | "
            f"{float(thr['server_cpu_ms_per_call']):.2f} ms{_database_cpu(name, thr)} "
            f"| {float(thr['busiest_process_share']):.2f} "
            f"| {float(thr['client_cpu_ms_per_call']):.2f} ms | {float(thr['load_average']):.1f} | {thr['codes']} |"
        )
    lines += [
        "",
        f"Throughput of 2 processes over 1: {_scaling(figures)} (target ≥ 1.7); load average: the",
        "machine's, read after each run (other work shares the cores when it exceeds what the",
        "benchmark itself runs).",
    ]
    lines += _busy_echo_lines(figures)
    served = figures.get("serve --processes 2, records on tmpfs", {}).get("throughput")
    one_tmpfs = _throughput(figures, 1, "tmpfs")
    if served is not None and one_tmpfs:
        per_call = float(served["server_cpu_ms_per_call"]) + float(served["client_cpu_ms_per_call"])
        cores = os.cpu_count() or 1
        lines += [
            "The CPU per call (server and client, tmpfs, throughput run) puts the ceiling of this",
            f"machine's {cores} cores at {cores * 1000 / per_call:.0f} /s, "
            f"{cores * 1000 / per_call / one_tmpfs:.2f}x one process, if nothing else ran.",
        ]
    return [*lines, "", *notes] if notes else lines


if __name__ == "__main__":
    print("\n".join(markdown(run(), [])))
