"""Orchestrator's gRPC transport: the service, its composition root, a client and the CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("orchestrator-grpc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
