"""A check whose ``run`` is a plain def that blocks (``time.sleep``): the engine must run it
off the event loop."""

from __future__ import annotations

import time

from orchestrator_core.hookspecs import RegisterCheck, hookimpl
from orchestrator_core.models import CheckResult, Proposal, Task
from orchestrator_hostile_plugin import SLEEP_SECONDS, armed, passing


class SyncRunCheck:
    name = "hostile-sync-run"
    kind = "hostile"

    def run(self, task: Task, proposal: Proposal) -> CheckResult:
        time.sleep(SLEEP_SECONDS)
        return passing(self.name)


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    if armed("hostile-check-sync-run"):
        register(SyncRunCheck())
