"""``orchestrator submit``, ``watch ID`` and ``cancel ID``: a deliberation queued on the
server, followed from anywhere, and stopped.

``submit`` prints the id at once (``--json``: the response). ``watch`` shows the progress
display of ``deliberate`` while the deliberation's events come in (``--json``: each event
as a line of JSON), then its result, and exits 0 only when it succeeded: 1 when it failed or
was cancelled, as ``deliberate`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import grpc
from rich.live import Live

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.events import DeliberationFinished
from orchestrator_core.orchestrator import Orchestration
from orchestrator_core.records import RecordStatus
from orchestrator_core.text import inert
from orchestrator_grpc import convert
from orchestrator_grpc.cli.connection import Connection
from orchestrator_grpc.cli.deliberate import FAILURE, USAGE_ERROR, print_orchestration, print_outcome, task_of
from orchestrator_grpc.cli.display import CLIConsole
from orchestrator_grpc.cli.output import fail_rpc, print_json, to_dict
from orchestrator_grpc.cli.progress import DeliberationProgress


def submit(args: argparse.Namespace) -> int:
    try:
        task = task_of(args)
    except OSError as exc:
        print(f"orchestrator: cannot read test file: {exc}", file=sys.stderr)
        return USAGE_ERROR
    connection = Connection.from_args(args)
    top_k = (args.top_k or 0) if args.orchestrate else None

    async def call() -> pb.SubmitDeliberationResponse:
        async with connection.client() as client:
            return await client.submit(
                task, top_k=top_k, num_agents=args.agents, rounds=args.rounds,
                request_id=args.request_id, deadline=args.timeout,
            )

    try:
        response = asyncio.run(call())
    except grpc.aio.AioRpcError as error:
        return fail_rpc(error, connection)
    if args.json:
        print_json(to_dict(response))
    else:
        print(response.deliberation_id)
    return 0


def watch(args: argparse.Namespace) -> int:
    if args.after < 0:
        print("orchestrator: --after must not be negative", file=sys.stderr)
        return USAGE_ERROR
    connection = Connection.from_args(args)
    try:
        finished = asyncio.run(_watch(args, connection))
    except grpc.aio.AioRpcError as error:
        return fail_rpc(error, connection)
    if finished is None:
        print(f"orchestrator: {args.address} ended the watch before the deliberation finished", file=sys.stderr)
        return FAILURE
    return 0 if finished.status == RecordStatus.SUCCEEDED else FAILURE


async def _watch(args: argparse.Namespace, connection: Connection) -> DeliberationFinished | None:
    """Follow the deliberation; its finished event, or None when the stream ended without one."""
    async with connection.client() as client:
        # The record gives the task (for the ranking's events) and the council's size.
        record = convert.record_from_proto(await client.get_deliberation(args.deliberation_id, deadline=args.timeout))
        messages = client.watch_messages(record.deliberation_id, after_sequence=args.after, deadline=args.timeout)
        finished: DeliberationFinished | None = None
        if args.json:
            async for message in messages:
                print_json_line(message)
                event = convert.event_from_proto(message, record.task)
                if isinstance(event, DeliberationFinished):
                    finished = event
            return finished
        progress = DeliberationProgress(record.role.upper(), record.num_agents)
        console = CLIConsole(stderr=True)
        with Live(progress, console=console, transient=True, auto_refresh=False) as live:
            async for message in messages:
                event = convert.event_from_proto(message, record.task)
                if event is None:
                    continue  # a kind of event this client does not know
                if isinstance(event, DeliberationFinished):
                    finished = event
                    continue
                progress.update(event)
                live.refresh()
        console.print(progress)
        if finished is None:
            return None
        if finished.status == RecordStatus.SUCCEEDED:
            final = convert.record_from_proto(await client.get_deliberation(record.deliberation_id))
            if final.outcome is not None and final.selection is not None:
                print_orchestration(Orchestration(final.deliberation_id, final.outcome, final.selection))
            elif final.outcome is not None:
                print_outcome(final.outcome)
        else:
            kind = f" ({inert(finished.error_kind)})" if finished.error_kind else ""
            print(
                f"deliberation {inert(record.deliberation_id)} {finished.status}{kind}: {inert(finished.error)}",
                file=sys.stderr,
            )
        return finished


def print_json_line(message: pb.DeliberationEvent) -> None:
    """One event as one line of JSON (a stream of them reads line by line)."""
    import json

    print(json.dumps(to_dict(message), separators=(",", ":")), flush=True)


def cancel(args: argparse.Namespace) -> int:
    connection = Connection.from_args(args)

    async def call() -> pb.CancelDeliberationResponse:
        async with connection.client() as client:
            return await client.cancel(args.deliberation_id, deadline=args.timeout)

    try:
        response = asyncio.run(call())
    except grpc.aio.AioRpcError as error:
        return fail_rpc(error, connection)
    if args.json:
        print_json(to_dict(response))
    else:
        status = pb.DeliberationStatus.Name(response.status).removeprefix("DELIBERATION_STATUS_").lower()
        note = "" if status == "cancelled" else " (cancel requested; it stops shortly)"
        print(f"deliberation {inert(response.deliberation_id)}: {status}{note}")
    return 0
