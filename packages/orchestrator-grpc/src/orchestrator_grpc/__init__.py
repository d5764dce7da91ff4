"""Orchestrator's gRPC transport: the service, its composition root, a client and the CLI."""


def __getattr__(name: str) -> str:
    if name == "__version__":  # looked up on first use (see orchestrator_core.versions)
        from orchestrator_core.versions import package_version

        return package_version("orchestrator-grpc")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__"]
