"""An entry-point plugin for the CLI tests: the core's scripted test doubles.

The tests make it an installed plugin by writing a ``.dist-info`` directory with its entry
point (group ``orchestrator``) onto the ``PYTHONPATH`` of the processes they start.
"""

from __future__ import annotations

from orchestrator_core.hookspecs import RegisterAgentBackend, RegisterCheck, hookimpl
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck


@hookimpl
def register_agents(register: RegisterAgentBackend) -> None:
    register(ScriptedBackend())


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    register(ScriptedCheck(name="lint", kind="lint"))
