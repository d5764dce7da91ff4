"""The ``orchestrator`` command: serve, worker, plugins, status, health, deliberate, orchestrate,
submit, watch, cancel, deliberations, eval (a benchmark through the service) and plugin (a
new plugin package).

Plugins are loaded by the commands that need them (``serve``, ``plugins``), never at
import time, so a broken plugin cannot break ``orchestrator --help``. Nothing heavy is
imported to parse the command line: each command's module (and with it gRPC, protobuf,
rich, the core) is imported when the command runs.

A closed stdout (``orchestrator status | head -1``) ends the command quietly with exit
status 141, as a process killed by SIGPIPE reports it in a shell.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from orchestrator_grpc.cli import arguments, connection
from orchestrator_grpc.cli.arguments import LazyCommand
from orchestrator_grpc.cli.connection import ConnectionOptionsError, add_client_options

Command = Callable[[argparse.Namespace], int]
USAGE_ERROR = 2
CLOSED_STDOUT = 141
"""Exit status when stdout closed early: 128 + SIGPIPE, what a shell shows for ``yes | head -1``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="A council of AI agents deliberates on a software task over gRPC.",
        epilog="The client options (--address, --timeout, TLS, --token-file) go before or after the command.",
    )
    add_client_options(parser)
    commands_ = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands_.add_parser("serve", help="run the gRPC service (ORCH_* settings)")
    serve.add_argument("--host", help="address to bind (default: ORCH_HOST or 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port to bind, 0 for any free one (default: ORCH_PORT or 50055)"
    )
    serve.add_argument(
        "--metrics-port", type=int,
        help="serve Prometheus metrics over HTTP at /metrics on this port, 0 for any free one "
        "(default: ORCH_METRICS_PORT; off when unset)",
    )
    serve.add_argument(
        "--processes", type=int,
        help="server processes sharing the port, one event loop each (default: ORCH_PROCESSES or 1)",
    )
    serve.set_defaults(run=LazyCommand("commands", "serve"))

    worker = commands_.add_parser(
        "worker", help="run queued deliberations from NATS JetStream (ORCH_NATS_URL; no gRPC port)"
    )
    worker.add_argument(
        "--metrics-port", type=int,
        help="serve Prometheus metrics over HTTP at /metrics on this port, 0 for any free one "
        "(default: ORCH_METRICS_PORT; off when unset)",
    )
    worker.set_defaults(run=LazyCommand("commands", "worker"))

    plugins = commands_.add_parser("plugins", help="list loaded and failed plugins as JSON")
    plugins.set_defaults(run=LazyCommand("commands", "plugins"))

    status = commands_.add_parser("status", help="the server's status as JSON")
    add_client_options(status)
    status.set_defaults(run=LazyCommand("client_commands", "status"), client_timeout=None)

    health = commands_.add_parser(
        "health", help="exit 0 when the server is SERVING (like grpc-health-probe)"
    )
    add_client_options(health)
    health.add_argument("--service", default="", help='service to check (default: "", the whole server)')
    health.set_defaults(run=LazyCommand("client_commands", "health"), client_timeout=5.0)

    for add_command in (
        arguments.add_deliberate, arguments.add_orchestrate,
        arguments.add_submit, arguments.add_watch, arguments.add_cancel,
    ):
        command = add_command(commands_)
        add_client_options(command)
        command.set_defaults(client_timeout=None)

    add_client_options(arguments.add_eval(commands_))
    arguments.add_plugin(commands_)

    records = commands_.add_parser("deliberations", help="stored deliberation records")
    records_commands = records.add_subparsers(dest="records_command", required=True, metavar="COMMAND")
    listing = records_commands.add_parser("list", help="records, newest first")
    add_client_options(listing)
    listing.add_argument("--role", default="", help="only this role's records")
    listing.add_argument("--status", choices=arguments.RECORD_STATUSES, help="only records in this status")
    listing.add_argument(
        "--since", type=arguments.point_in_time, default=0.0,
        help="only records created at or after this time (ISO 8601, e.g. 2025-01-31T12:00, UTC if no zone)",
    )
    listing.add_argument(
        "--until", type=arguments.point_in_time, default=0.0, help="only records created before this time"
    )
    listing.add_argument("--page-size", type=int, default=0)
    listing.add_argument("--page-token", default="")
    listing.add_argument(
        "--json", action="store_true",
        help="print JSON instead of a table (a table on a terminal, else tab-separated values)",
    )
    listing.set_defaults(run=LazyCommand("client_commands", "list_deliberations"), client_timeout=None)
    show = records_commands.add_parser(
        "show", help="one record as JSON (a plain summary on stderr), and with --timeline its picture"
    )
    add_client_options(show)
    show.add_argument("deliberation_id")
    show.add_argument(
        "--timeline", type=arguments.timeline_file, metavar="FILE",
        help="also draw the deliberation's calls and checks on a time axis to FILE (.png or .svg; "
        "needs the timeline extra: pip install 'orchestrator-grpc[timeline]')",
    )
    show.set_defaults(run=LazyCommand("client_commands", "show_deliberation"), client_timeout=None)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line, client options filled in; usage errors exit 2 (argparse)."""
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if hasattr(args, "client_timeout"):
        connection.fill_defaults(args, args.client_timeout)
    elif given := connection.given_options(args):
        parser.error(f"{', '.join(given)}: the {args.command} command does not dial a server")
    if arguments.misplaced_top_k(args):
        parser.error("--top-k selects among candidates: use it with --orchestrate (or `orchestrator orchestrate`)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    run: Command = args.run
    try:
        code = run(args)
        sys.stdout.flush()  # here, so that a closed stdout is caught below, not at exit
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except ConnectionOptionsError as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _stdout_closed() -> int:
    """The reader of stdout is gone: nothing more can be said there, and nothing is wrong to
    say on stderr. Point stdout at /dev/null so that the interpreter's last flush finds no
    closed pipe (see "Note on SIGPIPE" in the signal module's documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return CLOSED_STDOUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
