"""``orchestrator deliberate``: stream a deliberation with a live progress display, then
print the ranked proposals (or, with ``--orchestrate``, the selected winner)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import grpc
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from orchestrator_core.events import RankingReady
from orchestrator_core.models import (
    DeliberationOutcome,
    Proposal,
    RankedProposal,
    Task,
    TaskConstraints,
    TaskTest,
)
from orchestrator_core.orchestrator import Orchestration
from orchestrator_grpc import convert
from orchestrator_grpc.cli.connection import Connection
from orchestrator_grpc.cli.output import fail_rpc, print_json, to_dict
from orchestrator_grpc.cli.progress import DeliberationProgress

USAGE_ERROR = 2
FAILURE = 1


class StreamEndedEarly(Exception):
    """The server closed the stream without sending the ranking."""


def add_parser(
    commands: Any, add_client_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    parser = commands.add_parser("deliberate", help="run a deliberation and show its progress")
    add_client_options(parser)
    parser.add_argument("--role", required=True, help="DEV, QA, ARCHITECT, DEVOPS, DATA, ...")
    parser.add_argument("--task", required=True, help="what the council should do")
    parser.add_argument("--agents", type=int, default=0, help="council size (default: the council's)")
    parser.add_argument(
        "--rounds", type=int, default=None,
        help="critique/revise rounds, 0 for none (default: the server's, ORCH_DEFAULT_ROUNDS)",
    )
    parser.add_argument("--rubric", default="", help="what reviewers judge proposals against")
    parser.add_argument(
        "--requirement", action="append", default=[], help="something every proposal must satisfy"
    )
    parser.add_argument(
        "--tests", nargs="+", default=[], metavar="FILE", help="test files for dry-run checks"
    )
    parser.add_argument(
        "--agent-timeout", type=float, default=0.0,
        help="seconds each agent call may take (default: the server's; the tighter applies)",
    )
    parser.add_argument("--orchestrate", action="store_true", help="also select a winner")
    parser.add_argument("--top-k", type=int, default=0, help="candidates the selector chooses among")
    parser.add_argument("--json", action="store_true", help="print the response as JSON, no display")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        task = Task(
            role=args.role,
            description=args.task,
            constraints=TaskConstraints(
                rubric=args.rubric,
                requirements=tuple(args.requirement),
                tests=tuple(_read_test(path) for path in args.tests),
                agent_timeout_seconds=args.agent_timeout,
            ),
        )
    except OSError as exc:
        print(f"orchestrator: cannot read test file: {exc}", file=sys.stderr)
        return USAGE_ERROR
    connection = Connection.from_args(args)
    try:
        if args.orchestrate:
            orchestration = asyncio.run(_orchestrate(args, task, connection))
            _print_orchestration(args, orchestration)
        else:
            outcome = asyncio.run(_stream(args, task, connection))
            _print_outcome(args, outcome)
    except grpc.aio.AioRpcError as error:
        return fail_rpc(error, args.address)
    except StreamEndedEarly as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return FAILURE
    return 0


def _read_test(name: str) -> TaskTest:
    """A test file under the path given, if it is relative and stays inside; else its name."""
    path = Path(name)
    relative = PurePosixPath(path.as_posix())
    inside = not relative.is_absolute() and ".." not in relative.parts
    return TaskTest(path=str(relative) if inside else path.name, content=path.read_text(encoding="utf-8"))


async def _stream(args: argparse.Namespace, task: Task, connection: Connection) -> DeliberationOutcome:
    progress = DeliberationProgress(task.role.upper(), args.agents)
    console = Console(stderr=True, quiet=args.json)
    outcome: DeliberationOutcome | None = None
    async with connection.client() as client:
        events = client.stream_deliberation(
            task, num_agents=args.agents, rounds=args.rounds, deadline=args.timeout
        )
        # Transient: a failed call leaves only its error line; a finished one its last state.
        with Live(progress, console=console, transient=True, auto_refresh=False) as live:
            async for event in events:
                progress.update(event)
                live.refresh()
                if isinstance(event, RankingReady):
                    outcome = event.outcome
    console.print(progress)
    if outcome is None:
        raise StreamEndedEarly(f"{args.address} ended the stream without a ranking")
    return outcome


async def _orchestrate(args: argparse.Namespace, task: Task, connection: Connection) -> Orchestration:
    console = Console(stderr=True)
    async with connection.client() as client:
        call = client.orchestrate(
            task, num_agents=args.agents, rounds=args.rounds, top_k=args.top_k, deadline=args.timeout
        )
        if args.json:
            return await call
        with console.status(f"the {task.role.upper()} council is deliberating, then selecting"):
            return await call


def _print_outcome(args: argparse.Namespace, outcome: DeliberationOutcome) -> None:
    if args.json:
        print_json(to_dict(convert.outcome_to_proto(outcome)))
        return
    console = Console()
    console.print(_results_table(outcome.results))
    for failure in outcome.failures:
        console.print(f"[red]{failure.agent_id} failed in {failure.phase.value}[/red]: {failure.error}")
    usage = outcome.usage
    console.print(
        f"deliberation {outcome.deliberation_id}: {outcome.rounds} round(s), "
        f"{outcome.duration_seconds:.1f}s, {usage.total_tokens} tokens"
    )
    console.print(viability_line(outcome.viable_proposals, len(outcome.results)))
    if outcome.results:
        best = outcome.results[0]
        verdict = "viable" if best.viable else "NOT viable"
        console.print(Panel(best.proposal.content, title=f"#1 {_proposal_label(best.proposal)} ({verdict})"))


def _print_orchestration(args: argparse.Namespace, orchestration: Orchestration) -> None:
    if args.json:
        print_json(to_dict(convert.orchestration_to_proto(orchestration)))
        return
    console = Console()
    selection = orchestration.selection
    console.print(_results_table(selection.candidates))
    if selection.failure is not None:
        console.print(f"[yellow]selection fell back to the top score[/yellow]: {selection.failure.error}")
    winner = selection.winner.proposal
    console.print(f"winner {winner.proposal_id}, selected by {selection.selected_by}: {selection.rationale}")
    console.print(Panel(winner.content, title=f"winner {_proposal_label(winner)}"))


def _results_table(results: tuple[RankedProposal, ...]) -> Table:
    table = Table("rank", "proposal", "author", "score", "viable", "checks")
    for result in results:
        checks = " ".join(
            f"[green]{c.name}✓[/green]" if c.passed else f"[red]{c.name}✗[/red]" for c in result.checks
        )
        table.add_row(
            str(result.rank), _proposal_label(result.proposal), result.proposal.author_id,
            f"{result.score:.3f}", "[green]yes[/green]" if result.viable else "[red]no[/red]", checks,
        )
    return table


def viability_line(viable: int, total: int) -> str:
    """One plain line: how many proposals passed their checks, or that none did."""
    if viable == 0:
        return f"[red]no viable proposal[/red]: none of the {total} proposal(s) passed its checks"
    return f"{viable} of {total} proposal(s) viable (passed every check that counts)"


TRUNCATED_NOTE = "(cut off at max_tokens)"


def _proposal_label(proposal: Proposal) -> str:
    """The proposal's id, noting when the model's reply was cut off at its length limit."""
    return f"{proposal.proposal_id} {TRUNCATED_NOTE}" if proposal.truncated else proposal.proposal_id
