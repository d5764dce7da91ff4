"""Argument types and option sets of the command line, without importing what the commands
need (gRPC, protobuf, rich, the core): parsing, ``--help`` and usage errors start fast."""

from __future__ import annotations

import argparse
import importlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RECORD_STATUSES = ("running", "succeeded", "failed", "cancelled", "interrupted", "queued")
"""``deliberations list --status``: the record statuses, as DeliberationStatus names end."""


class LazyCommand:
    """A command's function, imported from its module when the command runs."""

    def __init__(self, module: str, function: str) -> None:
        self.module = f"orchestrator_grpc.cli.{module}"
        self.function = function

    def __call__(self, args: argparse.Namespace) -> int:
        result: int = getattr(importlib.import_module(self.module), self.function)(args)
        return result


def point_in_time(text: str) -> float:
    """``--since``/``--until``: ISO 8601 (UTC when it names no zone), as seconds since the epoch."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2025-01-31T12:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


TIMELINE_SUFFIXES = (".png", ".svg")


def timeline_file(text: str) -> Path:
    """``deliberations show --timeline``: a .png or .svg file, the format chosen by the suffix."""
    path = Path(text)
    if path.suffix.lower() not in TIMELINE_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{text!r}: the timeline is drawn as a .png or an .svg file")
    return path


def add_task_options(parser: argparse.ArgumentParser) -> None:
    """What ``deliberate`` and ``orchestrate`` share: the task and how the council works on it."""
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
    parser.add_argument("--json", action="store_true", help="print the response as JSON, no display")


TOP_K_HELP = "candidates the selector chooses among (default: the server's)"


def add_deliberate(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "deliberate", help="run a deliberation and show its progress"
    )
    add_task_options(parser)
    parser.add_argument(
        "--orchestrate", action="store_true", help="also select a winner (as `orchestrator orchestrate`)"
    )
    parser.add_argument("--top-k", type=int, default=None, help=TOP_K_HELP + "; needs --orchestrate")
    parser.set_defaults(run=LazyCommand("deliberate", "run"))
    return parser


def add_orchestrate(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "orchestrate", help="run a deliberation, then select the winner among the top proposals"
    )
    add_task_options(parser)
    parser.add_argument("--top-k", type=int, default=0, help=TOP_K_HELP)
    parser.set_defaults(run=LazyCommand("deliberate", "run"), orchestrate=True)
    return parser


def misplaced_top_k(args: argparse.Namespace) -> bool:
    """``deliberate --top-k`` (or ``submit --top-k``) without ``--orchestrate``: a ranking
    selects nothing."""
    command = getattr(args, "command", "")
    return command in ("deliberate", "submit") and args.top_k is not None and not args.orchestrate


def add_submit(commands: Any) -> argparse.ArgumentParser:
    """``submit``: the task options of ``deliberate``; prints the id at once."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "submit", help="queue a deliberation and print its id at once (then: watch ID, cancel ID)"
    )
    add_task_options(parser)
    parser.add_argument("--orchestrate", action="store_true", help="also select a winner")
    parser.add_argument("--top-k", type=int, default=None, help=TOP_K_HELP + "; needs --orchestrate")
    parser.add_argument(
        "--request-id", default="",
        help="an id of your choosing: submitting it again returns the same deliberation",
    )
    parser.set_defaults(run=LazyCommand("queued", "submit"))
    return parser


def add_watch(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "watch", help="follow a deliberation to its end (exit 1 unless it succeeded)"
    )
    parser.add_argument("deliberation_id")
    parser.add_argument(
        "--after", type=int, default=0, metavar="N", help="only the events after the N-th (default: all)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print each event as a line of JSON, no display"
    )
    parser.set_defaults(run=LazyCommand("queued", "watch"))
    return parser


def add_cancel(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser("cancel", help="cancel a queued or running deliberation")
    parser.add_argument("deliberation_id")
    parser.add_argument("--json", action="store_true", help="print the response as JSON")
    parser.set_defaults(run=LazyCommand("queued", "cancel"))
    return parser


def add_eval(commands: Any) -> argparse.ArgumentParser:
    """``eval humaneval``: a council against a single agent, on HumanEval."""
    evaluation = commands.add_parser("eval", help="measure the service on a code benchmark")
    benchmarks = evaluation.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    parser: argparse.ArgumentParser = benchmarks.add_parser(
        "humaneval",
        help="pass@1 of single, best-of-n, council and orchestrate on OpenAI's HumanEval",
        description="Runs each arm on HumanEval's problems through the service (a running one at "
        "--address, or one started with --serve), scores each answer on the problem's hidden tests "
        "in the dry-run sandbox, and writes the results (JSONL, resumable), a chart and a report.",
    )
    parser.add_argument("--serve", action="store_true",
                        help="start the service for the run (its ORCH_* settings from the environment)")
    parser.add_argument("--arms", default="single,best-of-n,council,orchestrate",
                        help="comma-separated arms (default: all four)")
    parser.add_argument("--problems", default="", help="problem numbers, e.g. 0,2,5-9 (default: all 164)")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most this many problems: the first ones, or a sample with --seed")
    parser.add_argument("--seed", type=int, default=None,
                        help="draw --limit and --deliberation-sample as seeded samples; with --serve, "
                        "also the agents' sampling seed")
    parser.add_argument("--deliberation-sample", type=int, default=None, metavar="N",
                        help="run council and orchestrate on a fixed sample of N of the problems only "
                        "(the cheap arms on all)")
    parser.add_argument("--agents", type=int, default=3, help="N, the council size (default: 3)")
    parser.add_argument("--rounds", type=int, default=1, help="R, critique/revise rounds (default: 1)")
    parser.add_argument("--top-k", type=int, default=0, help="orchestrate: candidates the selector sees")
    parser.add_argument("--role", default="DEV", help="the council's role (default: DEV)")
    parser.add_argument("--concurrency", type=int, default=1, help="problems in flight at once (default: 1)")
    parser.add_argument("--call-timeout", type=float, default=None,
                        help="seconds each deliberation may take (default: the server's budget)")
    parser.add_argument("--out-dir", type=Path, default=Path("eval"),
                        help="results, chart and server log (default: ./eval)")
    parser.add_argument("--report", type=Path, default=Path("EVAL.md"), help="the report (default: ./EVAL.md)")
    parser.add_argument("--report-only", action="store_true",
                        help="redraw the report and chart from the results so far; ask the service nothing")
    parser.set_defaults(run=LazyCommand("evaluate", "humaneval"), client_timeout=None)
    return parser


def add_plugin(commands: Any) -> argparse.ArgumentParser:
    """``plugin new NAME [--directory DIR]``: a new plugin package from the template."""
    from orchestrator_grpc.cli.plugin_new import plugin_name  # the standard library only

    plugin: argparse.ArgumentParser = commands.add_parser(
        "plugin", help="write plugins: `plugin new NAME` creates a plugin package"
    )
    plugin_commands = plugin.add_subparsers(dest="plugin_command", required=True, metavar="COMMAND")
    new = plugin_commands.add_parser(
        "new", help="create a pip-installable plugin package: a backend, a check, conformance tests, a README",
    )
    new.add_argument("name", type=plugin_name, metavar="NAME",
                     help="the plugin's distribution, entry-point and backend name, e.g. acme-reviewer")
    new.add_argument("--directory", type=Path, default=Path("."),
                     help="where to create the NAME directory (default: the current directory)")
    new.set_defaults(run=LazyCommand("plugin_new", "run"))
    return plugin
