"""Orchestrator's core: the plugin contract and the deliberation engine."""

from orchestrator_core.versions import PLUGIN_API_VERSION


def __getattr__(name: str) -> str:
    if name == "__version__":  # looked up on first use (see orchestrator_core.versions)
        from orchestrator_core.versions import package_version

        return package_version("orchestrator-core")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PLUGIN_API_VERSION", "__version__"]
