"""A hook that registers something that is not an agent backend."""

from orchestrator_core.hookspecs import hookimpl


@hookimpl
def register_agents(register):
    register("not a backend")
