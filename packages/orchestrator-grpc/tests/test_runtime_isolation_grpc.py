"""Through the service: a blocking check does not freeze health or GetStatus, a check that
blocks the loop is a counted stall, and a quorum lost to a backend's bug is INTERNAL."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_test_support import HANG_GUARD, ServerFactory, request

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import CheckResult, Proposal, Task
from orchestrator_core.testing import PluginRegistrar, ScriptedPlugin

Stub = pb_grpc.OrchestratorServiceStub


class SleepingCheck:
    """A synchronous check: it calls time.sleep (50 ms at a time) until the test releases it."""

    name, kind = "sleepy", "style"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()

    def run(self, task: Task, proposal: Proposal) -> CheckResult:
        self.started.set()
        deadline = time.monotonic() + HANG_GUARD
        while not self.release.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.finished.set()
        return CheckResult(self.name, self.kind, True, 1.0)


class LoopHog:
    """An async check that blocks the event loop (time.sleep in a coroutine), undeclared."""

    name, kind = "loop-hog", "style"

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        time.sleep(1.0)
        return CheckResult(self.name, self.kind, True, 1.0)


def judged(response: pb.DeliberateResponse) -> list[tuple[str, int, float, list[tuple[str, bool, float]]]]:
    """Each proposal's rank, score, and its checks' verdicts, the check under test left out."""
    rows = []
    for result in response.results:
        suite = result.checks
        standard = [getattr(suite, name) for name in ("policy", "lint", "dryrun")]
        checks = [(r.name, r.passed, r.score) for r in standard]
        checks += [(name, r.passed, r.score) for name, r in sorted(suite.others.items()) if name != "sleepy"]
        rows.append((result.proposal.author_id, result.rank, result.score, checks))
    return rows


async def test_health_and_status_answer_while_a_check_sleeps_and_other_results_are_unchanged(
    orchestrator_plugins: PluginRegistrar, serve_with: ServerFactory
) -> None:
    sleepy = SleepingCheck()
    orchestrator_plugins.register(ScriptedPlugin(sleepy), name="sleepy-plugin")
    async with serve_with(loop_stall_seconds=0.2) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub, health = Stub(channel), health_pb2_grpc.HealthStub(channel)
        sleepy.release.set()
        unblocked = await stub.Deliberate(request(), timeout=HANG_GUARD)
        for event in (sleepy.release, sleepy.started, sleepy.finished):
            event.clear()

        running = asyncio.ensure_future(stub.Deliberate(request(), timeout=HANG_GUARD * 2))
        assert await asyncio.to_thread(sleepy.started.wait, HANG_GUARD), "the sleeping check never started"
        try:
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=HANG_GUARD)
            status = await stub.GetStatus(pb.GetStatusRequest(), timeout=HANG_GUARD)
            assert not sleepy.finished.is_set()  # both answered while the check slept
            assert not running.done()
        finally:
            sleepy.release.set()
        blocked = await running

    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert status.status == "SERVING"
    assert status.statistics.in_flight == 1
    assert judged(blocked) == judged(unblocked)
    assert all(r.checks.others["sleepy"].passed for r in blocked.results)


async def test_a_check_blocking_the_loop_is_a_stall_counted_against_it(
    orchestrator_plugins: PluginRegistrar, serve_with: ServerFactory
) -> None:
    orchestrator_plugins.register(ScriptedPlugin(LoopHog()), name="hog-plugin")
    async with serve_with(loop_stall_seconds=0.2) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = Stub(channel)
        response = await stub.Deliberate(request(), timeout=HANG_GUARD * 2)
        status = await stub.GetStatus(pb.GetStatusRequest(), timeout=HANG_GUARD)

    assert all(r.checks.others["loop-hog"].passed for r in response.results)
    assert status.statistics.loop_stalls >= 1
    assert status.statistics.longest_loop_stall_seconds > 0.2
    [hog] = [p for p in status.statistics.plugin_failures if (p.kind, p.name) == ("check", "loop-hog")]
    assert hog.loop_stalls >= 1
    assert (hog.bugs, hog.timeouts) == (0, 0)


async def test_a_quorum_lost_to_a_backend_bug_is_internal_naming_the_backend(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Deliberate(request(role="BROKEN"), timeout=HANG_GUARD)

    assert error.value.code() is grpc.StatusCode.INTERNAL
    details = error.value.details() or ""
    assert details.startswith(
        "2 of 3 agents failed, leaving 1, below the quorum of 2, because of a bug in the code of backend "
        "'broken'; see the service log: "
    )
    assert "broken-2 in generate: RuntimeError: model crashed [a bug in backend 'broken'" in details
    assert "broken-3 in generate: TypeError: returned dict, not an AgentReply [a bug in backend 'broken'" in details

    status = await stub.GetStatus(pb.GetStatusRequest(), timeout=HANG_GUARD)
    [broken] = [p for p in status.statistics.plugin_failures if (p.kind, p.name) == ("backend", "broken")]
    assert (broken.bugs, broken.timeouts, broken.errors) == (2, 0, 0)
