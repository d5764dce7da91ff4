"""The ``orchestrator`` command: serve, plugins, status, health, deliberate, deliberations.

Plugins are loaded by the commands that need them (``serve``, ``plugins``), never at
import time, so a broken plugin cannot break ``orchestrator --help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from orchestrator_grpc.cli import commands, deliberate
from orchestrator_grpc.cli.connection import ConnectionOptionsError, add_client_options

Command = Callable[[argparse.Namespace], int]
USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="A council of AI agents deliberates on a software task over gRPC.",
    )
    commands_ = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands_.add_parser("serve", help="run the gRPC service (ORCH_* settings)")
    serve.add_argument("--host", help="address to bind (default: ORCH_HOST or 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port to bind, 0 for any free one (default: ORCH_PORT or 50055)"
    )
    serve.set_defaults(run=commands.serve)

    plugins = commands_.add_parser("plugins", help="list loaded and failed plugins as JSON")
    plugins.set_defaults(run=commands.plugins)

    status = commands_.add_parser("status", help="the server's status as JSON")
    add_client_options(status)
    status.set_defaults(run=commands.status)

    health = commands_.add_parser(
        "health", help="exit 0 when the server is SERVING (like grpc-health-probe)"
    )
    add_client_options(health, timeout=5.0)
    health.add_argument("--service", default="", help='service to check (default: "", the whole server)')
    health.set_defaults(run=commands.health)

    deliberate.add_parser(commands_, add_client_options)

    records = commands_.add_parser("deliberations", help="stored deliberation records")
    records_commands = records.add_subparsers(dest="records_command", required=True, metavar="COMMAND")
    listing = records_commands.add_parser("list", help="records, newest first")
    add_client_options(listing)
    listing.add_argument("--role", default="", help="only this role's records")
    listing.add_argument("--status", choices=commands.RECORD_STATUSES, help="only records in this status")
    listing.add_argument(
        "--since", type=commands.point_in_time, default=0.0,
        help="only records created at or after this time (ISO 8601, e.g. 2025-01-31T12:00, UTC if no zone)",
    )
    listing.add_argument(
        "--until", type=commands.point_in_time, default=0.0, help="only records created before this time"
    )
    listing.add_argument("--page-size", type=int, default=0)
    listing.add_argument("--page-token", default="")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=commands.list_deliberations)
    show = records_commands.add_parser("show", help="one record as JSON (a plain summary on stderr)")
    add_client_options(show)
    show.add_argument("deliberation_id")
    show.set_defaults(run=commands.show_deliberation)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Command = args.run
    try:
        return run(args)
    except ConnectionOptionsError as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
