"""A check whose ``run`` is a plain def that blocks (``time.sleep``): the engine must run it
off the event loop."""

from __future__ import annotations

import threading
import time

from orchestrator_core.hookspecs import RegisterCheck, hookimpl
from orchestrator_core.models import CheckResult, Proposal, Task
from orchestrator_hostile_plugin import SLEEP_SECONDS, armed


class SyncRunCheck:
    name = "hostile-sync-run"
    kind = "hostile"

    def run(self, task: Task, proposal: Proposal) -> CheckResult:
        started = time.monotonic()
        time.sleep(SLEEP_SECONDS)
        where = f"ran on thread {threading.current_thread().name}"  # the tests check it is not MainThread
        return CheckResult(self.name, self.kind, True, 1.0, (where,), time.monotonic() - started)


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    if armed("hostile-check-sync-run"):
        register(SyncRunCheck())
