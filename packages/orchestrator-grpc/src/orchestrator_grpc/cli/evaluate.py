"""``orchestrator eval humaneval``: the harness of :mod:`orchestrator_grpc.evaluation`, as a
client of a running service (or of one it starts with ``--serve``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from orchestrator_core.records.redaction import redacted_options
from orchestrator_grpc.cli.connection import Connection
from orchestrator_grpc.evaluation.arms import ArmPlan, parse_arms, plan_arm
from orchestrator_grpc.evaluation.humaneval import DatasetUnavailable, Problem, load_problems, select_problems
from orchestrator_grpc.evaluation.judging import HiddenTestJudge, JudgeUnavailable
from orchestrator_grpc.evaluation.report import RunContext, draw_chart, render, summaries
from orchestrator_grpc.evaluation.results import ResultsFile, Row
from orchestrator_grpc.evaluation.runner import Evaluation, Pair, deliberation_sample, plan_pairs
from orchestrator_grpc.evaluation.serving import ServiceDidNotStart, served

USAGE_ERROR = 2
INTERRUPTED = 130
RESULTS_NAME = "humaneval.jsonl"
RUNS_NAME = "humaneval-runs.jsonl"
CHART_NAME = "humaneval.png"
SERVER_LOG_NAME = "humaneval-server.log"
NOTES_NAME = "humaneval-notes.md"


def humaneval(args: argparse.Namespace) -> int:
    try:
        plans = [plan_arm(arm, agents=args.agents, rounds=args.rounds, top_k=args.top_k)
                 for arm in parse_arms(args.arms)]
        problems = select_problems(load_problems(), numbers=parse_numbers(args.problems),
                                   limit=args.limit, seed=args.seed)
        results = ResultsFile(args.out_dir / RESULTS_NAME)
        if args.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        if args.report_only:
            _write_report(args, results, plans, problems)
            return 0
        judge = HiddenTestJudge()
    except (ValueError, DatasetUnavailable, JudgeUnavailable) as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return USAGE_ERROR
    connection = Connection.from_args(args)
    started = time.time()
    try:
        written = asyncio.run(_evaluate(args, connection, judge, results, problems, plans))
    except ServiceDidNotStart as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return 1
    except grpc.aio.AioRpcError as error:
        print(f"orchestrator: {connection.address}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        _log_run(args.out_dir / RUNS_NAME, _command(args), started, results.added)
        _write_report(args, results, plans, problems)
        print(f"orchestrator: interrupted; {results.added} finished pair(s) are kept in "
              f"{args.out_dir / RESULTS_NAME}: run the same command again to go on", file=sys.stderr)
        return INTERRUPTED
    _log_run(args.out_dir / RUNS_NAME, _command(args), started, results.added)
    _write_report(args, results, plans, problems)
    failed = [row for row in written if not row.finished]
    if failed:
        print(f"orchestrator: {len(failed)} call(s) failed (see {args.out_dir / RESULTS_NAME}); "
              "run the same command again to retry them", file=sys.stderr)
        return 1
    return 0


def parse_numbers(text: str) -> list[int] | None:
    """``0,2,5-9`` as problem numbers; empty means all."""
    if not text.strip():
        return None
    numbers: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"--problems: {part!r} is not a number or a range like 5-9") from None
        numbers.extend(range(low, high + 1))
    return numbers


async def _evaluate(args: argparse.Namespace, connection: Connection, judge: HiddenTestJudge,
                    results: ResultsFile, problems: Sequence[Problem], plans: Sequence[ArmPlan]) -> list[Row]:
    pairs = plan_pairs(problems, plans, deliberation_sample(problems, args.deliberation_sample, args.seed))
    _stop_on_sigterm()
    if args.serve:
        async with served(_serve_settings(args), args.out_dir / SERVER_LOG_NAME) as address:
            return await _run(dataclasses.replace(connection, address=address, tls=None), judge, results,
                              pairs, args)
    return await _run(connection, judge, results, pairs, args)


async def _run(connection: Connection, judge: HiddenTestJudge, results: ResultsFile, pairs: Sequence[Pair],
               args: argparse.Namespace) -> list[Row]:
    async with connection.client() as client:
        evaluation = Evaluation(client, judge, results, role=args.role, concurrency=args.concurrency,
                                deadline=args.call_timeout, progress=_progress)
        return await evaluation.run(pairs)


def _stop_on_sigterm() -> None:
    """SIGTERM ends the run as Ctrl-C does: the pairs in flight are cancelled, the service
    started with ``--serve`` is stopped, and what finished is kept and reported."""
    task = asyncio.current_task()
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def _serve_settings(args: argparse.Namespace) -> dict[str, str]:
    """The child service's settings beyond the environment's: records beside the results, and
    the agents' seed when one is given and the environment sets none."""
    settings: dict[str, str] = {}
    if "ORCH_DATABASE_PATH" not in os.environ and "ORCH_DATABASE_URL" not in os.environ:
        settings["ORCH_DATABASE_PATH"] = str(args.out_dir / "humaneval-records.sqlite3")
    if args.seed is not None:
        for name in ("ORCH_EMBEDDED_SEED", "ORCH_OPENAI_SEED"):
            settings.setdefault(name, os.environ.get(name, str(args.seed)))
    return settings


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _log_run(path: Path, command: str, started: float, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"command": command, "started": started, "wall_seconds": round(time.time() - started, 1),
             "rows": rows}
    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(entry) + "\n")


def _runs(path: Path) -> list[dict[str, Any]]:
    """The runs that wrote the results, oldest first."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_report(args: argparse.Namespace, results: ResultsFile, plans: Sequence[ArmPlan],
                  problems: Sequence[Problem]) -> None:
    keys = [plan.key for plan in plans]
    rows = list(results.rows.values())
    chart = args.out_dir / CHART_NAME
    draw_chart(summaries(rows, keys), chart)
    sample = args.deliberation_sample
    note = (f"council and orchestrate on a fixed sample of {sample} drawn with seed {args.seed}"
            if sample is not None and sample < len(problems) else "every arm on every problem")
    runs = _runs(args.out_dir / RUNS_NAME)
    context = RunContext(
        commands=tuple(dict.fromkeys(str(run["command"]) for run in runs)) or (_command(args),),
        date=datetime.now(UTC).strftime("%Y-%m-%d"), machine=_machine(),
        settings=_settings(args), wall_seconds=sum(float(run.get("wall_seconds", 0.0)) for run in runs),
        sample_note=note, chart_name=os.path.relpath(chart, args.report.parent or Path(".")),
        notes=notes.read_text(encoding="utf-8") if (notes := args.out_dir / NOTES_NAME).is_file() else "",
    )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(render(rows, keys, context), encoding="utf-8")
    print(f"wrote {args.report}, {chart} and {args.out_dir / RESULTS_NAME}", file=sys.stderr)


def _command(args: argparse.Namespace) -> str:
    return shlex.join(["orchestrator", *getattr(args, "argv", sys.argv[1:])])


def _machine() -> str:
    return (f"{platform.system()} {platform.machine()} ({_cpu_model()}), {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "processor unknown"


def _settings(args: argparse.Namespace) -> tuple[str, ...]:
    shown = [f"role {args.role}", f"N={args.agents}", f"R={args.rounds}", f"concurrency {args.concurrency}"]
    if args.seed is not None:
        shown.append(f"seed {args.seed}")
    prefix = "ORCH_"
    given = {name.removeprefix(prefix): value for name, value in os.environ.items() if name.startswith(prefix)}
    for name, value in sorted(redacted_options(given).items()):
        shown.append(f"{prefix}{name}={json.loads(value)}")
    return tuple(shown)
