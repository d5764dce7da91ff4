"""``orchestrator deliberate``: stream a deliberation with a live progress display, then
print the ranked proposals; ``orchestrator orchestrate`` (or ``deliberate --orchestrate``):
the selected winner.

Everything shown that a model or a plugin wrote (proposals, ids, check names, errors, the
selector's rationale) goes through :mod:`~orchestrator_grpc.cli.display`: control
characters written out, markup never interpreted. ``--json`` prints the response message
as the server sent it, values exact.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path, PurePosixPath

import grpc
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrator.v1 import orchestrator_pb2 as pb
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
from orchestrator_grpc.cli.display import CLIConsole, plain, shown
from orchestrator_grpc.cli.output import fail_rpc, print_json, to_dict
from orchestrator_grpc.cli.progress import DeliberationProgress

USAGE_ERROR = 2
FAILURE = 1


class StreamEndedEarly(Exception):
    """The server closed the stream without sending the ranking."""


def task_of(args: argparse.Namespace) -> Task:
    """The task the command line describes (its test files read: OSError when one cannot be)."""
    return Task(
        role=args.role,
        description=args.task,
        constraints=TaskConstraints(
            rubric=args.rubric,
            requirements=tuple(args.requirement),
            tests=tuple(_read_test(path) for path in args.tests),
            agent_timeout_seconds=args.agent_timeout,
        ),
    )


def run(args: argparse.Namespace) -> int:
    try:
        task = task_of(args)
    except OSError as exc:
        print(f"orchestrator: cannot read test file: {exc}", file=sys.stderr)
        return USAGE_ERROR
    connection = Connection.from_args(args)
    try:
        if args.orchestrate:
            response = asyncio.run(_orchestrate(args, task, connection))
            if args.json:
                print_json(to_dict(response))
            else:
                print_orchestration(convert.orchestration_from_proto(response, task))
        else:
            ranking, outcome = asyncio.run(_stream(args, task, connection))
            if args.json:
                print_json(to_dict(ranking))
            else:
                print_outcome(outcome)
    except grpc.aio.AioRpcError as error:
        return fail_rpc(error, connection)
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


async def _stream(
    args: argparse.Namespace, task: Task, connection: Connection
) -> tuple[pb.DeliberateResponse, DeliberationOutcome]:
    """The ranking as the server sent it (for ``--json``) and as the core's outcome (for
    the text), with the live display on stderr meanwhile."""
    progress = DeliberationProgress(task.role.upper(), args.agents)
    console = CLIConsole(stderr=True, quiet=args.json)
    ranking: tuple[pb.DeliberateResponse, DeliberationOutcome] | None = None
    async with connection.client() as client:
        messages = client.stream_deliberation_messages(
            task, num_agents=args.agents, rounds=args.rounds, deadline=args.timeout
        )
        # Transient: a failed call leaves only its error line; a finished one its last state.
        with Live(progress, console=console, transient=True, auto_refresh=False) as live:
            async for message in messages:
                event = convert.event_from_proto(message, task)
                if event is None:
                    continue  # a kind of event this client does not know
                progress.update(event)
                live.refresh()
                if isinstance(event, RankingReady):
                    ranking = message.ranking, event.outcome
    console.print(progress)
    if ranking is None:
        raise StreamEndedEarly(f"{args.address} ended the stream without a ranking")
    return ranking


async def _orchestrate(args: argparse.Namespace, task: Task, connection: Connection) -> pb.OrchestrateResponse:
    console = CLIConsole(stderr=True)
    async with connection.client() as client:
        call = client.orchestrate_response(
            task, num_agents=args.agents, rounds=args.rounds, top_k=args.top_k or 0, deadline=args.timeout
        )
        if args.json:
            return await call
        with console.status(f"the {task.role.upper()} council is deliberating, then selecting"):
            return await call


def print_outcome(outcome: DeliberationOutcome) -> None:
    console = CLIConsole()
    console.print(_results_table(outcome.results))
    for failure in outcome.failures:
        console.print(f"[red]{shown(failure.agent_id)} failed in {failure.phase.value}[/red]: {shown(failure.error)}")
    usage = outcome.usage
    console.print(
        f"deliberation {shown(outcome.deliberation_id)}: {outcome.rounds} round(s), "
        f"{outcome.duration_seconds:.1f}s, {usage.total_tokens} tokens"
    )
    console.print(viability_line(outcome.viable_proposals, len(outcome.results)))
    if outcome.results:
        best = outcome.results[0]
        verdict = "viable" if best.viable else "NOT viable"
        title = f"#1 {shown(_proposal_label(best.proposal))} ({verdict})"
        console.print(Panel(plain(best.proposal.content), title=title))


def print_orchestration(orchestration: Orchestration) -> None:
    console = CLIConsole()
    selection = orchestration.selection
    console.print(_results_table(selection.candidates))
    if selection.failure is not None:
        console.print(f"[yellow]selection fell back to the top score[/yellow]: {shown(selection.failure.error)}")
    winner = selection.winner.proposal
    console.print(
        f"winner {shown(winner.proposal_id)}, selected by {shown(selection.selected_by)}: {shown(selection.rationale)}"
    )
    console.print(Panel(plain(winner.content), title=f"winner {shown(_proposal_label(winner))}"))


def _results_table(results: tuple[RankedProposal, ...]) -> Table:
    table = Table("rank", "proposal", "author", "score", "viable", "checks")
    for result in results:
        checks = Text(" ").join(
            plain(f"{c.name}✓", "green") if c.passed else plain(f"{c.name}✗", "red") for c in result.checks
        )
        table.add_row(
            str(result.rank), plain(_proposal_label(result.proposal)), plain(result.proposal.author_id),
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
