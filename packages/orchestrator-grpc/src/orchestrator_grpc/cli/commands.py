"""The small commands: serve, plugins, status, health, deliberations list/show."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from datetime import UTC, datetime

import grpc
from pydantic import ValidationError
from rich.console import Console
from rich.table import Column, Table

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.errors import OrchestratorError
from orchestrator_core.plugins import load_plugins
from orchestrator_core.settings import Settings, SettingsFileError
from orchestrator_grpc.auth import TokensUnavailable
from orchestrator_grpc.cli.connection import Connection
from orchestrator_grpc.cli.output import fail_rpc, print_json, to_dict
from orchestrator_grpc.server import AddressUnavailable
from orchestrator_grpc.server import serve as serve_forever
from orchestrator_grpc.tls import TLSFilesUnavailable

_STATUS_FILTERS = {
    "running": pb.DELIBERATION_STATUS_RUNNING,
    "succeeded": pb.DELIBERATION_STATUS_SUCCEEDED,
    "failed": pb.DELIBERATION_STATUS_FAILED,
    "cancelled": pb.DELIBERATION_STATUS_CANCELLED,
    "interrupted": pb.DELIBERATION_STATUS_INTERRUPTED,
}
RECORD_STATUSES = tuple(_STATUS_FILTERS)

# Exit codes of `health`, as grpc-health-probe uses them.
HEALTH_CONNECTION_FAILURE = 2
HEALTH_RPC_FAILURE = 3
HEALTH_UNHEALTHY = 4

# Exit code of `serve` and `plugins` when the configuration is wrong: a setting's value, the
# ORCH_CONFIG_FILE file, an address to listen on. Fixing the configuration is the remedy.
CONFIGURATION_ERROR = 2


def serve(args: argparse.Namespace) -> int:
    overrides = {
        name: value for name, value in (("host", args.host), ("port", args.port)) if value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"orchestrator: invalid settings: {settings_problems(exc)}", file=sys.stderr)
        return CONFIGURATION_ERROR
    except SettingsFileError as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return CONFIGURATION_ERROR
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        plugins = load_plugins(settings)
        asyncio.run(serve_forever(settings, plugins))
    except AddressUnavailable as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return CONFIGURATION_ERROR
    except (OrchestratorError, OSError, TokensUnavailable, TLSFilesUnavailable) as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return 1
    return 0


def plugins(args: argparse.Namespace) -> int:
    try:
        host = load_plugins(Settings())
    except ValidationError as exc:
        print(f"orchestrator: invalid settings: {settings_problems(exc)}", file=sys.stderr)
        return CONFIGURATION_ERROR
    except SettingsFileError as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return CONFIGURATION_ERROR
    except OrchestratorError as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return 1
    print_json(
        {
            "plugins": [dataclasses.asdict(p) for p in host.plugins],
            "failed": [dataclasses.asdict(p) for p in host.failed],
        }
    )
    return 0


def status(args: argparse.Namespace) -> int:
    connection = Connection.from_args(args)
    async def call() -> pb.GetStatusResponse:
        async with connection.client() as client:
            return await client.status(deadline=args.timeout)

    try:
        print_json(to_dict(asyncio.run(call())))
    except grpc.aio.AioRpcError as error:
        return fail_rpc(error, args.address)
    return 0


def health(args: argparse.Namespace) -> int:
    connection = Connection.from_args(args)
    async def call() -> str:
        async with connection.client() as client:
            return await client.health(args.service, deadline=args.timeout)

    service = f"service {args.service!r}" if args.service else "server"
    try:
        serving = asyncio.run(call())
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            print(f"unreachable: {args.address}: {code.name}: {error.details()}", file=sys.stderr)
            return HEALTH_CONNECTION_FAILURE
        if code is grpc.StatusCode.NOT_FOUND:
            print(f"unknown {service} at {args.address}", file=sys.stderr)
        else:
            print(f"health check failed: {code.name}: {error.details()}", file=sys.stderr)
        return HEALTH_RPC_FAILURE
    print(f"{service} at {args.address}: {serving}")
    return 0 if serving == "SERVING" else HEALTH_UNHEALTHY


def list_deliberations(args: argparse.Namespace) -> int:
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
        return fail_rpc(error, args.address)
    if args.json:
        print_json(to_dict(page))
    else:
        Console().print(_records_table(page))
        if page.next_page_token:
            print(f"more: --page-token {page.next_page_token}")
    return 0


def show_deliberation(args: argparse.Namespace) -> int:
    connection = Connection.from_args(args)
    async def call() -> pb.DeliberationRecord:
        async with connection.client() as client:
            return await client.get_deliberation(args.deliberation_id, deadline=args.timeout)

    try:
        record = asyncio.run(call())
    except grpc.aio.AioRpcError as error:
        return fail_rpc(error, args.address)
    print_json(to_dict(record))
    for line in record_summary(record):
        print(line, file=sys.stderr)
    return 0


def record_summary(record: pb.DeliberationRecord) -> list[str]:
    """Plain lines for a reader (stdout stays JSON, for scripts): the outcome, whether any
    proposal was viable, and what each council seat ran."""
    status = pb.DeliberationStatus.Name(record.status).removeprefix("DELIBERATION_STATUS_").lower()
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
    return lines


def settings_problems(error: ValidationError) -> str:
    """What is wrong with the settings, without the values given: pydantic's own message
    quotes the input, which may hold tokens, keys or a database password."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'settings'}: {problem['msg']}"
        for problem in error.errors(include_url=False, include_input=False, include_context=False)
    )


def point_in_time(text: str) -> float:
    """``--since``/``--until``: ISO 8601 (UTC when it names no zone), as seconds since the epoch."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2025-01-31T12:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _records_table(page: pb.ListDeliberationsResponse) -> Table:
    # The id stays whole, for `deliberations show`.
    table = Table(Column("id", no_wrap=True), "kind", "role", "status", "created", "task")
    for record in page.deliberations:
        table.add_row(
            record.deliberation_id,
            record.kind,
            record.role,
            pb.DeliberationStatus.Name(record.status).removeprefix("DELIBERATION_STATUS_").lower(),
            _time(record.created_at),
            _shorten(record.task, 60),
        )
    return table


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") if seconds else ""


def _shorten(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"

