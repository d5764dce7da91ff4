"""The commands that call a server: status, health, deliberations list/show.

Text that came from a model, a plugin or another user (a task, an agent's error, a seat's
model name) is printed inert: control characters written out, never rich markup.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

import grpc

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.text import inert
from orchestrator_grpc.cli.arguments import RECORD_STATUSES
from orchestrator_grpc.cli.connection import Connection
from orchestrator_grpc.cli.output import fail_rpc, print_json, to_dict

_STATUS_FILTERS = {
    "running": pb.DELIBERATION_STATUS_RUNNING,
    "succeeded": pb.DELIBERATION_STATUS_SUCCEEDED,
    "failed": pb.DELIBERATION_STATUS_FAILED,
    "cancelled": pb.DELIBERATION_STATUS_CANCELLED,
    "interrupted": pb.DELIBERATION_STATUS_INTERRUPTED,
    "queued": pb.DELIBERATION_STATUS_QUEUED,
}
assert tuple(_STATUS_FILTERS) == RECORD_STATUSES  # the parser offers what is filtered on

# Exit codes of `health`, as grpc-health-probe uses them.
HEALTH_CONNECTION_FAILURE = 2
HEALTH_RPC_FAILURE = 3
HEALTH_UNHEALTHY = 4

USAGE_ERROR = 2

RECORD_COLUMNS = ("id", "kind", "role", "status", "created", "task")


def status(args: argparse.Namespace) -> int:
    connection = Connection.from_args(args)

    async def call() -> pb.GetStatusResponse:
        async with connection.client() as client:
            return await client.status(deadline=args.timeout)

    try:
        print_json(to_dict(asyncio.run(call())))
    except grpc.aio.AioRpcError as error:
        return fail_rpc(error, connection)
    return 0


def health(args: argparse.Namespace) -> int:
    connection = Connection.from_args(args)

    async def call() -> str:
        async with connection.client() as client:
            return await client.health(args.service, deadline=args.timeout)

    service = f"service {inert(args.service)!r}" if args.service else "server"
    try:
        serving = asyncio.run(call())
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            print(f"unreachable: {args.address}: {code.name}: {inert(error.details() or '')}", file=sys.stderr)
            return HEALTH_CONNECTION_FAILURE
        if code is grpc.StatusCode.NOT_FOUND:
            print(f"unknown {service} at {args.address}", file=sys.stderr)
        else:
            print(f"health check failed: {code.name}: {inert(error.details() or '')}", file=sys.stderr)
        return HEALTH_RPC_FAILURE
    print(f"{service} at {args.address}: {serving}")
    return 0 if serving == "SERVING" else HEALTH_UNHEALTHY


def list_deliberations(args: argparse.Namespace) -> int:
    """A table on a terminal; else tab-separated values with a header, every value whole."""
    status_filter = _STATUS_FILTERS[args.status] if args.status else pb.DELIBERATION_STATUS_UNSPECIFIED
    connection = Connection.from_args(args)

    async def call() -> pb.ListDeliberationsResponse:
        async with connection.client() as client:
            return await client.list_deliberations(
                role=args.role,
                status=status_filter,
                page_size=args.page_size,
                page_token=args.page_token,
                created_after=args.since,
                created_before=args.until,
                deadline=args.timeout,
            )

    try:
        page = asyncio.run(call())
    except grpc.aio.AioRpcError as error:
        return fail_rpc(error, connection)
    more = f"more: --page-token {page.next_page_token}" if page.next_page_token else ""
    if args.json:
        print_json(to_dict(page))
    elif sys.stdout.isatty():
        from orchestrator_grpc.cli.display import CLIConsole

        CLIConsole().print(_records_table(page))
        if more:
            print(more)
    else:
        for row in (RECORD_COLUMNS, *(_record_row(record) for record in page.deliberations)):
            print("\t".join(row))
        if more:
            print(more, file=sys.stderr)  # stdout stays one record a line
    return 0


def show_deliberation(args: argparse.Namespace) -> int:
    """The record as JSON on stdout, a summary on stderr; with ``--timeline``, its picture
    too (matplotlib is looked for before the server is called: without it nothing is done)."""
    if args.timeline is not None:
        from orchestrator_grpc.timeline import TimelineUnavailable, require_matplotlib

        try:
            require_matplotlib()
        except TimelineUnavailable as exc:
            print(f"orchestrator: {exc}", file=sys.stderr)
            return USAGE_ERROR
    connection = Connection.from_args(args)

    async def call() -> pb.DeliberationRecord:
        async with connection.client() as client:
            return await client.get_deliberation(args.deliberation_id, deadline=args.timeout)

    try:
        record = asyncio.run(call())
    except grpc.aio.AioRpcError as error:
        return fail_rpc(error, connection)
    print_json(to_dict(record))
    for line in record_summary(record):
        print(inert(line), file=sys.stderr)
    if args.timeline is not None:
        from orchestrator_grpc.convert import record_from_proto
        from orchestrator_grpc.timeline import draw_timeline

        try:
            draw_timeline(record_from_proto(record), args.timeline)
        except OSError as exc:
            print(f"orchestrator: cannot write the timeline: {exc}", file=sys.stderr)
            return 1
        print(f"timeline: {args.timeline}", file=sys.stderr)
    return 0


def record_summary(record: pb.DeliberationRecord) -> list[str]:
    """Plain lines for a reader (stdout stays JSON, for scripts): the outcome, whether any
    proposal was viable, and what each council seat ran."""
    status = _status_name(record.status)
    kind = f" ({record.error_kind})" if record.error_kind else ""
    lines = [f"deliberation {record.deliberation_id}: {status}{kind}"]
    if record.HasField("response"):
        results = record.response.results
        viable = [r.proposal.proposal_id for r in results if r.viable]
        if viable:
            lines.append(f"{len(viable)} of {len(results)} proposal(s) viable: {', '.join(viable)}")
        else:
            lines.append(f"no viable proposal: none of the {len(results)} proposal(s) passed its checks")
    for seat in record.council:
        ran = " ".join(part for part in (seat.model, f"at {seat.endpoint}" if seat.endpoint else "") if part)
        origin = f" (from {seat.source})" if seat.source else ""
        lines.append(f"{seat.agent_id}: {seat.backend} {ran or '(the backend does not say what it runs)'}{origin}")
    return lines + calls_summary(record)


def calls_summary(record: pb.DeliberationRecord) -> list[str]:
    """Each agent call on a line: its start (seconds after the deliberation's), duration, agent,
    phase and round, outcome and tokens; then how many checks ran and failed."""
    lines = []
    if record.calls:
        lines.append(f"{len(record.calls)} agent call(s): start, duration (s), agent, phase, outcome, tokens")
    for call in record.calls:
        phase = f"{call.phase} {call.round}" if call.round else call.phase
        marks = ", truncated" if call.truncated else ""
        tokens = call.usage.prompt_tokens + call.usage.completion_tokens
        lines.append(
            f"  {call.started_at - record.created_at:+8.3f} {call.finished_at - call.started_at:7.3f}  "
            f"{call.agent_id}  {phase}  {call.outcome}{marks}  {tokens}"
        )
    if record.checks:
        failed = sum(not check.result.passed for check in record.checks)
        lines.append(f"{len(record.checks)} check run(s), {failed} not passed")
    return lines


def _status_name(status: int) -> str:
    return pb.DeliberationStatus.Name(status).removeprefix("DELIBERATION_STATUS_").lower()


def _record_row(record: pb.DeliberationRecord) -> tuple[str, ...]:
    """A record's values for one line: whitespace runs (tabs, newlines) become one space."""
    values = (record.deliberation_id, record.kind, record.role, _status_name(record.status),
              _time(record.created_at), record.task)
    return tuple(" ".join(inert(value).split()) for value in values)


def _records_table(page: pb.ListDeliberationsResponse) -> object:
    from rich.table import Column, Table

    from orchestrator_grpc.cli.display import plain

    # The id stays whole, for `deliberations show`.
    table = Table(Column("id", no_wrap=True), "kind", "role", "status", "created", "task")
    for record in page.deliberations:
        *values, task = _record_row(record)
        table.add_row(*(plain(value) for value in values), plain(_shorten(task, 60)))
    return table


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") if seconds else ""


def _shorten(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"
