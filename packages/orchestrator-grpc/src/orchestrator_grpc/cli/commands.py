"""The commands that run without a server: serve, worker and plugins (the client commands are
in ``client_commands``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from typing import Any

from pydantic import ValidationError

from orchestrator_core.errors import OrchestratorError
from orchestrator_core.plugin_settings import PluginSettingsError
from orchestrator_core.plugins import load_plugins
from orchestrator_core.settings import Settings, SettingsFileError
from orchestrator_grpc.auth import TokensUnavailable
from orchestrator_grpc.cli.output import print_json
from orchestrator_grpc.observability.log_format import configure_logging
from orchestrator_grpc.server import AddressUnavailable, Announce
from orchestrator_grpc.server import serve as serve_forever
from orchestrator_grpc.tls import TLSFilesUnavailable

# Exit code of `serve` and `plugins` when the configuration is wrong: a setting's value, the
# ORCH_CONFIG_FILE file, an address to listen on. Fixing the configuration is the remedy.
CONFIGURATION_ERROR = 2
FAILURE = 1


class _SettingsUnusable(Exception):
    """The settings cannot be read: a value, or the ORCH_CONFIG_FILE file; the message says
    what is wrong."""


def _read_settings(**overrides: Any) -> Settings:
    """The settings (``overrides`` over the environment and the settings file)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise _SettingsUnusable(f"invalid settings: {settings_problems(exc)}") from None
    except SettingsFileError as exc:
        raise _SettingsUnusable(str(exc)) from None


def serve(args: argparse.Namespace) -> int:
    overrides = {
        name: value
        for name, value in (
            ("host", args.host), ("port", args.port), ("metrics_port", args.metrics_port),
            ("processes", args.processes),
        )
        if value is not None
    }
    try:
        settings = _read_settings(**overrides)
    except _SettingsUnusable as exc:
        return _exit_with(exc, CONFIGURATION_ERROR)
    configure_logging(settings, sys.stderr)
    if settings.processes > 1:
        from orchestrator_grpc.processes import serve_processes

        try:
            return serve_processes(settings)
        except AddressUnavailable as exc:
            return _exit_with(exc, CONFIGURATION_ERROR)
    return run_server(settings)


def run_server(settings: Settings, announce: Announce | None = None) -> int:
    """Serve in this process until SIGTERM; the exit status (``announce``: see ``serve``)."""
    try:
        plugins = load_plugins(settings)
        asyncio.run(serve_forever(settings, plugins, announce))
    except (AddressUnavailable, PluginSettingsError) as exc:
        return _exit_with(exc, CONFIGURATION_ERROR)
    except (OrchestratorError, OSError, TokensUnavailable, TLSFilesUnavailable) as exc:
        return _exit_with(exc, FAILURE)
    return 0


def worker(args: argparse.Namespace) -> int:
    """Run queued deliberations from NATS JetStream until SIGTERM (see orchestrator_grpc.worker);
    exit 2 without ORCH_NATS_URL or with invalid settings, 1 when NATS or the records fail."""
    from orchestrator_grpc.worker import NoQueueConfigured, work

    overrides = {"metrics_port": args.metrics_port} if args.metrics_port is not None else {}
    try:
        settings = _read_settings(**overrides)
    except _SettingsUnusable as exc:
        return _exit_with(exc, CONFIGURATION_ERROR)
    configure_logging(settings, sys.stderr)
    try:
        if settings.nats_url is None:
            raise NoQueueConfigured
        asyncio.run(work(settings, load_plugins(settings)))
    except (NoQueueConfigured, PluginSettingsError) as exc:
        return _exit_with(exc, CONFIGURATION_ERROR)
    except (OrchestratorError, OSError) as exc:
        return _exit_with(exc if str(exc) else RuntimeError(type(exc).__name__), FAILURE)
    return 0


def plugins(args: argparse.Namespace) -> int:
    """Print the loaded and the failed plugins as JSON; exit 1 when any plugin failed (the
    JSON is printed all the same), 2 when the settings or a plugin's settings are invalid."""
    try:
        settings = _read_settings()
    except _SettingsUnusable as exc:
        return _exit_with(exc, CONFIGURATION_ERROR)
    try:
        # Strict or not, every plugin is listed: the exit status says whether any failed.
        host = load_plugins(settings.model_copy(update={"plugins_strict": False}))
    except PluginSettingsError as exc:
        return _exit_with(exc, CONFIGURATION_ERROR)
    except OrchestratorError as exc:
        return _exit_with(exc, FAILURE)
    failed_plugins = [dataclasses.asdict(p) for p in host.failed]
    # "failed_plugins" as in GetStatus; "failed" kept for the scripts that read it.
    print_json({
        "plugins": [dataclasses.asdict(p) for p in host.plugins],
        "failed_plugins": failed_plugins,
        "failed": failed_plugins,
    })
    if failed_plugins:
        names = ", ".join(p["name"] for p in failed_plugins)
        print(f"orchestrator: {len(failed_plugins)} plugin(s) failed: {names}", file=sys.stderr)
        return FAILURE
    return 0


def _exit_with(error: Exception, code: int) -> int:
    """``error`` as one line on stderr; ``code``, the command's exit status."""
    print(f"orchestrator: {error}", file=sys.stderr)
    return code


def settings_problems(error: ValidationError) -> str:
    """What is wrong with the settings, without the values given: pydantic's own message
    quotes the input, which may hold tokens, keys or a database password."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'settings'}: {problem['msg']}"
        for problem in error.errors(include_url=False, include_input=False, include_context=False)
    )
