"""A hookimpl whose arguments do not match the hookspec."""

from orchestrator_core.hookspecs import hookimpl


@hookimpl
def register_agents(registry):  # the spec's argument is `register`
    registry(object())
