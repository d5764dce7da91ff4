"""Orchestrator's gRPC transport: the service, its composition root, a client and the CLI."""

# The version is looked up on first use: importlib.metadata is slow to import, and the
# command line imports this package on every start.


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("orchestrator-grpc")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0.0.0"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__"]
