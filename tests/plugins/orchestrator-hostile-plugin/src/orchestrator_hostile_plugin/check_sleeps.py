"""A check declared async that blocks the event loop with ``time.sleep``."""

from __future__ import annotations

import time

from orchestrator_core.hookspecs import RegisterCheck, hookimpl
from orchestrator_core.models import CheckResult, Proposal, Task
from orchestrator_hostile_plugin import SLEEP_SECONDS, armed, passing


class SleepingCheck:
    name = "hostile-sleep"
    kind = "hostile"

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        time.sleep(SLEEP_SECONDS)
        return passing(self.name)


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    if armed("hostile-check-sleeps"):
        register(SleepingCheck())
