"""A plugin cannot crash, freeze or skew the engine: bugs are named, logged and counted,
every call is bounded and says by what, blocking checks run off the loop, and one check's
stall or timeout never changes another check's result."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from core_support import HANG_GUARD

from orchestrator_core.breaker import CircuitBreaker, GuardedAgent
from orchestrator_core.deliberation import DeliberationEngine
from orchestrator_core.errors import BackendUnavailable, QuorumLost
from orchestrator_core.models import CheckResult, DeliberationOutcome, Phase, Proposal, Task, TaskConstraints
from orchestrator_core.plugin_calls import BACKEND, CHECK, PluginFailures
from orchestrator_core.scoring import Scorer
from orchestrator_core.testing import ScriptedAgent, ScriptedCheck
from orchestrator_core.watchdog import LoopWatchdog

TASK = Task(role="DEV", description="Write a function that adds two numbers")


def guarded(agent: ScriptedAgent, backend: str = "acme") -> GuardedAgent:
    return GuardedAgent(agent, CircuitBreaker("http://acme.invalid"), backend=backend)


def council(n: int, backend: str = "acme", **by_index: dict[str, object]) -> list[GuardedAgent]:
    return [
        guarded(ScriptedAgent(agent_id=f"dev-{i + 1}", **by_index.get(f"dev{i + 1}", {})), backend)  # type: ignore[arg-type]
        for i in range(n)
    ]


def engine(*checks: object, quorum: int = 1, scorer: Scorer | None = None, **kwargs: object) -> DeliberationEngine:
    return DeliberationEngine(
        checks=checks, scorer=scorer or Scorer(), quorum=quorum, agent_timeout_seconds=30, **kwargs  # type: ignore[arg-type]
    )


def results_of(outcome: DeliberationOutcome, author: str) -> dict[str, CheckResult]:
    [ranked] = [r for r in outcome.results if r.proposal.author_id == author]
    return {check.name: check for check in ranked.checks}


def bug_records(caplog: pytest.LogCaptureFixture, call: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and call in r.getMessage() and r.exc_info]


# -- agents ---------------------------------------------------------------------------------


async def test_an_agent_raising_keyerror_is_a_plugin_bug_named_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    agents = council(3, dev2={"fail_in": {Phase.GENERATE: KeyError("model")}})
    checked = engine()
    outcome = await checked.deliberate(TASK, agents, rounds=0)

    [failure] = outcome.failures
    assert failure.agent_id == "dev-2"
    assert failure.error.startswith("KeyError: 'model' ")
    assert "a bug in backend 'acme' (agent dev-2 generate); see the service log" in failure.error
    [record] = bug_records(caplog, "agent dev-2 generate (backend 'acme')")
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], KeyError)
    assert checked.failures.of(BACKEND, "acme") == PluginFailures(BACKEND, "acme", bugs=1)


async def test_a_documented_agent_error_is_not_a_bug_but_its_traceback_is_logged_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    agents = council(2, dev1={"fail_in": {Phase.GENERATE: BackendUnavailable("cannot reach acme")}})
    checked = engine()
    outcome = await checked.deliberate(TASK, agents, rounds=0)
    assert [f.error for f in outcome.failures] == ["cannot reach acme"]
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records if "dev-1" in r.getMessage())
    assert checked.failures.of(BACKEND, "acme") == PluginFailures(BACKEND, "acme", errors=1)


async def test_a_quorum_lost_to_a_bug_says_so_naming_the_backend() -> None:
    agents = council(3, dev2={"fail_in": {Phase.GENERATE: KeyError("model")}},
                     dev3={"fail_in": {Phase.GENERATE: BackendUnavailable("down")}})
    with pytest.raises(QuorumLost) as lost:
        await engine(quorum=2).deliberate(TASK, agents, rounds=0)
    assert lost.value.plugin_bug is True
    assert "a bug in the code of backend 'acme'; see the service log" in str(lost.value)
    assert "dev-2 in generate: KeyError: 'model'" in str(lost.value)


async def test_a_quorum_lost_to_documented_errors_is_not_a_bug() -> None:
    agents = council(2, dev2={"fail_in": {Phase.GENERATE: BackendUnavailable("down")}})
    with pytest.raises(QuorumLost) as lost:
        await engine(quorum=2).deliberate(TASK, agents, rounds=0)
    assert lost.value.plugin_bug is False


@pytest.mark.parametrize(
    ("constraints", "bound"),
    [
        (TaskConstraints(), "ORCH_AGENT_TIMEOUT_SECONDS"),
        (TaskConstraints(agent_timeout_seconds=0.05), "the task's constraints.agent_timeout_seconds"),
    ],
)
async def test_an_agent_timeout_names_the_agent_the_backend_and_the_bound(
    constraints: TaskConstraints, bound: str
) -> None:
    agents = council(2, dev2={"hang_in": frozenset({Phase.GENERATE})})
    checked = DeliberationEngine(checks=(), scorer=Scorer(), quorum=1,
                                 agent_timeout_seconds=0.05 if not constraints.agent_timeout_seconds else 30)
    task = Task(TASK.role, TASK.description, constraints)
    async with asyncio.timeout(HANG_GUARD):
        outcome = await checked.deliberate(task, agents, rounds=0)
    [failure] = outcome.failures
    assert failure.error == f"timed out after 0.05s (backend 'acme', agent dev-2 generate; bound: {bound})"
    assert checked.failures.of(BACKEND, "acme").timeouts == 1


# -- checks: bugs ---------------------------------------------------------------------------


@dataclass
class Misbehaving:
    """A check whose run does ``behaviour`` for dev-1's proposal, and passes the others."""

    name: str
    behaviour: str
    kind: str = "lint"

    async def run(self, task: Task, proposal: Proposal) -> object:
        if proposal.author_id != "dev-1":
            return CheckResult(self.name, self.kind, True, 1.0)
        if self.behaviour == "raise":
            raise KeyError("rules")
        if self.behaviour == "wrong type":
            return {"passed": True, "score": 1.0}
        if self.behaviour == "out of range":
            return CheckResult(self.name, self.kind, True, 7.5)  # CheckResult refuses it: a ValueError
        if self.behaviour == "sneaky score":
            result = CheckResult(self.name, self.kind, True, 1.0)
            object.__setattr__(result, "score", float("nan"))
            return result
        raise AssertionError(self.behaviour)


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ("raise", "KeyError: 'rules'"),
        ("wrong type", "TypeError: returned dict, not a CheckResult"),
        ("out of range", "ValueError: check 'picky' returned score 7.5, outside [0, 1]"),
        ("sneaky score", "ValueError: returned score nan, outside [0, 1]"),
    ],
)
async def test_a_check_bug_fails_that_check_only_is_logged_with_its_traceback_and_counted(
    behaviour: str, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    checked = engine(Misbehaving("picky", behaviour), ScriptedCheck(name="policy", kind="policy"))
    outcome = await checked.deliberate(TASK, council(2), rounds=0)

    broken = results_of(outcome, "dev-1")["picky"]
    assert broken.passed is False
    assert broken.score == 0.0
    assert broken.diagnostics == (
        f"check error: {error} [a bug in check 'picky' (run); see the service log]",
    )
    assert results_of(outcome, "dev-1")["policy"].passed is True
    assert results_of(outcome, "dev-2")["picky"].passed is True
    assert len(bug_records(caplog, "check 'picky' run")) == 1
    assert checked.failures.of(CHECK, "picky") == PluginFailures(CHECK, "picky", bugs=1)
    assert checked.failures.of(CHECK, "policy") == PluginFailures(CHECK, "policy")


async def test_a_result_is_the_checks_own_whatever_name_and_kind_it_wrote() -> None:
    class Impostor(ScriptedCheck):
        async def run(self, task: Task, proposal: Proposal) -> CheckResult:
            return CheckResult("policy", "policy", False, 0.0)  # claims the policy's name and veto

    outcome = await engine(Impostor(name="my-lint", kind="lint")).deliberate(TASK, council(1), rounds=0)
    [result] = outcome.results[0].checks
    assert (result.name, result.kind) == ("my-lint", "lint")
    assert outcome.results[0].score == 0.0  # scored as lint, not vetoed as policy; score 0 either way
    assert outcome.results[0].viable is False


# -- checks: bounds -------------------------------------------------------------------------


@dataclass
class Hanging:
    name: str = "slow"
    kind: str = "lint"
    timeout_seconds: float | None = None

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_check_timeout_names_the_check_and_the_setting() -> None:
    checked = engine(Hanging(), check_timeout_seconds=0.05)
    async with asyncio.timeout(HANG_GUARD):
        outcome = await checked.deliberate(TASK, council(1), rounds=0)
    [result] = outcome.results[0].checks
    assert result.diagnostics == (
        "timed out: check 'slow' run did not finish within 0.05s (ORCH_CHECK_TIMEOUT_SECONDS)",
    )
    assert checked.failures.of(CHECK, "slow").timeouts == 1


async def test_a_check_with_its_own_timeout_is_bounded_by_it() -> None:
    checked = engine(Hanging(timeout_seconds=0.05), check_timeout_seconds=HANG_GUARD * 10)
    async with asyncio.timeout(HANG_GUARD):
        outcome = await checked.deliberate(TASK, council(1), rounds=0)
    [result] = outcome.results[0].checks
    assert result.diagnostics == (
        "timed out: check 'slow' run did not finish within 0.05s (the check's timeout_seconds)",
    )


async def test_a_check_that_raises_timeouterror_itself_is_a_bug_not_a_timeout() -> None:
    class Raising(ScriptedCheck):
        async def run(self, task: Task, proposal: Proposal) -> CheckResult:
            raise TimeoutError("my subprocess")

    checked = engine(Raising(name="own"))
    outcome = await checked.deliberate(TASK, council(1), rounds=0)
    [result] = outcome.results[0].checks
    assert result.diagnostics[0].startswith("check error: TimeoutError: my subprocess [a bug in check 'own'")
    assert checked.failures.of(CHECK, "own") == PluginFailures(CHECK, "own", bugs=1)


# -- checks off the loop --------------------------------------------------------------------


@dataclass
class ThreadRecorder:
    name: str = "sync"
    kind: str = "lint"
    threads: list[threading.Thread] = field(default_factory=list)

    def result(self) -> CheckResult:
        self.threads.append(threading.current_thread())
        return CheckResult(self.name, self.kind, True, 1.0)


async def test_a_synchronous_run_runs_off_the_loop_in_a_daemon_thread() -> None:
    recorder = ThreadRecorder()

    class Sync:
        name, kind = "sync", "lint"

        def run(self, task: Task, proposal: Proposal) -> CheckResult:
            return recorder.result()

    outcome = await engine(Sync()).deliberate(TASK, council(2), rounds=0)
    assert all(r.checks[0].passed for r in outcome.results)
    assert len(recorder.threads) == 2
    assert all(t is not threading.current_thread() and t.daemon for t in recorder.threads)


async def test_a_check_declaring_blocking_runs_off_the_loop_even_when_async() -> None:
    recorder = ThreadRecorder(name="declared")

    class Declared:
        name, kind, blocking = "declared", "lint", True

        async def run(self, task: Task, proposal: Proposal) -> CheckResult:
            return recorder.result()

    await engine(Declared()).deliberate(TASK, council(1), rounds=0)
    [thread] = recorder.threads
    assert thread is not threading.current_thread()
    assert thread.daemon


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # lets an abandoned thread end


async def test_a_blocking_check_that_never_returns_is_abandoned_at_its_timeout(release: threading.Event) -> None:
    class Stuck:
        name, kind, timeout_seconds = "stuck", "lint", 0.1

        def run(self, task: Task, proposal: Proposal) -> CheckResult:
            release.wait(HANG_GUARD * 10)
            return CheckResult("stuck", "lint", True, 1.0)

    checked = engine(Stuck(), ScriptedCheck(name="policy", kind="policy"))
    async with asyncio.timeout(HANG_GUARD):
        outcome = await checked.deliberate(TASK, council(1), rounds=0)
    by_name = {r.name: r for r in outcome.results[0].checks}
    assert by_name["stuck"].diagnostics == (
        "timed out: check 'stuck' run did not finish within 0.1s (the check's timeout_seconds)",
    )
    assert by_name["policy"].passed is True
    assert checked.off_loop.abandoned == 1
    [thread] = [t for t in threading.enumerate() if t.name == "orchestrator plugin: check 'stuck' run"]
    assert thread.daemon  # never holds up the interpreter's exit
    release.set()
    thread.join(HANG_GUARD)
    assert checked.off_loop.abandoned == 0


# -- one check's stall never changes another's result ----------------------------------------


@dataclass
class Veto:
    """A policy-kind check with a veto and a tight budget: it fails dev-1 and passes the rest,
    after waiting on work elsewhere (as the built-in policy check parses in a thread)."""

    name: str = "policy"
    kind: str = "policy"
    timeout_seconds: float = 0.5

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        await asyncio.to_thread(time.sleep, 0.01)
        passed = proposal.author_id != "dev-1"
        return CheckResult(self.name, self.kind, passed, 1.0 if passed else 0.0, (f"judged {proposal.proposal_id}",))


class LoopBlocker:
    """A third-party check that blocks the event loop (time.sleep in a coroutine) without
    declaring it."""

    name, kind, timeout_seconds = "blocker", "style", 30.0

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        time.sleep(1.5)
        return CheckResult(self.name, self.kind, True, 1.0)


@pytest.fixture
async def watchdog() -> Iterator[LoopWatchdog]:  # type: ignore[misc]
    dog = LoopWatchdog(0.2)
    dog.start()
    yield dog
    dog.stop()


async def test_a_check_blocking_the_loop_does_not_time_out_the_policy_check_or_change_the_ranking(
    watchdog: LoopWatchdog,
) -> None:
    scorer = Scorer(weights={"style": 0.0})  # the blocker informs; it decides nothing
    agents = lambda: council(3)  # noqa: E731
    alone = await engine(Veto(), scorer=scorer).deliberate(TASK, agents(), rounds=0)
    async with asyncio.timeout(HANG_GUARD * 2):
        blocked = await engine(Veto(), LoopBlocker(), scorer=scorer).deliberate(TASK, agents(), rounds=0)

    assert watchdog.stalls >= 1  # the loop really was blocked past the policy check's budget
    for author in ("dev-1", "dev-2", "dev-3"):
        policy = results_of(blocked, author)["policy"]
        expected = results_of(alone, author)["policy"]
        verdict = (expected.passed, expected.score, expected.diagnostics)
        assert (policy.passed, policy.score, policy.diagnostics) == verdict
        assert results_of(blocked, author)["blocker"].passed is True
    assert [(r.proposal.author_id, r.rank, r.score, r.viable) for r in blocked.results] == [
        (r.proposal.author_id, r.rank, r.score, r.viable) for r in alone.results
    ]


async def test_a_check_that_blocks_the_loop_past_its_own_budget_times_out_itself(watchdog: LoopWatchdog) -> None:
    class Overrun(LoopBlocker):
        name, timeout_seconds = "overrun", 0.3

        async def run(self, task: Task, proposal: Proposal) -> CheckResult:
            time.sleep(1.0)
            return CheckResult(self.name, self.kind, True, 1.0)

    checked = engine(Overrun(), Veto(timeout_seconds=HANG_GUARD))
    async with asyncio.timeout(HANG_GUARD * 2):
        outcome = await checked.deliberate(TASK, council(1), rounds=0)
    by_name = {r.name: r for r in outcome.results[0].checks}
    assert by_name["overrun"].diagnostics == (
        "timed out: check 'overrun' run did not finish within 0.3s (the check's timeout_seconds)",
    )
    assert by_name["policy"].passed is False  # dev-1's proposal: the veto's own verdict, unchanged
    assert by_name["policy"].diagnostics == ("judged dev-1-v0",)


STUCK_CHILD = """
import asyncio, threading
from orchestrator_core.deliberation import DeliberationEngine
from orchestrator_core.models import CheckResult, Task
from orchestrator_core.scoring import Scorer
from orchestrator_core.testing import ScriptedAgent

class Stuck:
    name, kind, timeout_seconds = "stuck", "lint", 0.1
    def run(self, task, proposal):
        threading.Event().wait()  # never returns

async def main():
    engine = DeliberationEngine(checks=(Stuck(),), scorer=Scorer(), quorum=1)
    outcome = await engine.deliberate(Task("DEV", "add two numbers"), [ScriptedAgent("dev-1")], rounds=0)
    print(outcome.results[0].checks[0].diagnostics[0], flush=True)

asyncio.run(main())
"""


def test_a_thread_that_never_returns_does_not_stop_the_process_from_exiting() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", STUCK_CHILD], capture_output=True, text=True, timeout=HANG_GUARD * 2)
    assert done.returncode == 0, done.stderr
    assert "check 'stuck' run did not finish within 0.1s" in done.stdout
