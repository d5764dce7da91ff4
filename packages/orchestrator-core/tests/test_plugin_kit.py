"""The conformance kit itself: it passes good plugins and fails bad ones with a message that
names the plugin, what it did and what the contract asks instead."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_plugins import require_installed

from orchestrator_core import conformance
from orchestrator_core.conformance import ConformanceError, Limits
from orchestrator_core.models import AgentConfig, AgentReply, CheckResult, Critique, Proposal, Task
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck

QUICK = Limits(guard_seconds=0.5, max_loop_block_seconds=0.3)
"""For the bad plugins only: a guard that a never-ending call always outlasts, a loop-block
bound that a one-second time.sleep always exceeds. Good plugins get the defaults."""
GUARD = 60.0


# -- agent backends ----------------------------------------------------------------------


@dataclass
class Agent:
    """A well-behaved agent; the bad ones below each override one thing."""

    agent_id: str

    async def generate(self, task: Task) -> Any:
        await asyncio.sleep(0)
        return AgentReply(f"{self.agent_id}: {task.description[:20]}")

    async def critique(self, task: Task, proposal: Proposal) -> Any:
        await asyncio.sleep(0)
        return AgentReply(f"{self.agent_id} on {proposal.proposal_id}")

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> Any:
        await asyncio.sleep(0)
        return AgentReply(proposal.content + " (revised)")


@dataclass
class Backend:
    agent_class: type[Any] = Agent
    name: str = "kit-backend"
    known: frozenset[str] = frozenset({"model"})

    def create(self, config: AgentConfig) -> Any:
        unknown = set(config.options) - self.known
        if unknown:
            raise ValueError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return self.agent_class(config.agent_id)


class SyncAgent(Agent):
    def generate(self, task: Task) -> Any:  # type: ignore[override]
        return AgentReply("sync")


class TextAgent(Agent):
    async def generate(self, task: Task) -> Any:
        return "a str, not an AgentReply"


class ControlCharacterAgent(Agent):
    async def generate(self, task: Task) -> Any:
        if "\x00" in task.description:
            raise KeyError("\x00")
        return await super().generate(task)


class SwallowingAgent(Agent):
    async def generate(self, task: Task) -> Any:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(GUARD)
        return AgentReply("finished anyway")


class ConvertingAgent(Agent):
    async def generate(self, task: Task) -> Any:
        try:
            await asyncio.sleep(GUARD)
        except asyncio.CancelledError:
            raise RuntimeError("interrupted") from None
        return AgentReply("never")


class StubbornAgent(Agent):
    async def generate(self, task: Task) -> Any:
        try:
            await asyncio.sleep(GUARD)
        except asyncio.CancelledError:
            await asyncio.sleep(2.0)  # outlasts QUICK's guard, then ends
            raise
        return AgentReply("never")


class SleepingAgent(Agent):
    async def generate(self, task: Task) -> Any:
        time.sleep(1.0)
        return await super().generate(task)


class CritiqueFailsAgent(Agent):
    async def critique(self, task: Task, proposal: Proposal) -> Any:
        raise RuntimeError("critique is broken")


class NotReentrantAgent(Agent):
    """Shares one connection between all its agents and breaks when two calls overlap."""

    busy = False

    async def generate(self, task: Task) -> Any:
        if NotReentrantAgent.busy:
            raise RuntimeError("connection already in use")
        NotReentrantAgent.busy = True
        try:
            await asyncio.sleep(0.01)
            return await super().generate(task)
        finally:
            NotReentrantAgent.busy = False


class RenamedAgent(Agent):
    def __init__(self, agent_id: str) -> None:
        super().__init__("agent")


class AnyOptionBackend(Backend):
    def create(self, config: AgentConfig) -> Any:
        return Agent(config.agent_id)


class KeyErrorBackend(Backend):
    def create(self, config: AgentConfig) -> Any:
        return Agent(config.agent_id) if not config.options else {}["option"]


class VagueBackend(Backend):
    def create(self, config: AgentConfig) -> Any:
        if config.options:
            raise ValueError("bad options")
        return Agent(config.agent_id)


Verify = Callable[..., Awaitable[None]]
OPTIONS: dict[str, Any] = {"model": "m"}

BAD_BACKENDS: list[tuple[Any, Verify, str]] = [
    (Backend(name=""), conformance.verify_backend_contract, "has no name"),
    (Backend(SyncAgent), conformance.verify_backend_contract,
     r"agent SyncAgent\.generate\(\) is not a coroutine function: declare it `async def generate\(self, task\)`"),
    (Backend(RenamedAgent), conformance.verify_backend_contract, "it must be the config's agent_id"),
    (AnyOptionBackend(), conformance.verify_backend_rejects_unknown_options,
     "accepted the unknown option 'orchestrator_conformance_unknown_option'"),
    (KeyErrorBackend(), conformance.verify_backend_rejects_unknown_options,
     "with KeyError: 'option'; options it cannot use must raise ValueError"),
    (VagueBackend(), conformance.verify_backend_rejects_unknown_options, "a ValueError that does not name it"),
    (Backend(TextAgent), conformance.verify_agent_replies, r"agent\.generate\(\) returned str, not an AgentReply"),
    (Backend(SleepingAgent), conformance.verify_agent_replies, "blocked the event loop for"),
    (Backend(ControlCharacterAgent), conformance.verify_backend_hostile_inputs,
     r"agent\.generate\(\) on control characters raised KeyError"),
    (Backend(SwallowingAgent), conformance.verify_backend_cancellation, "swallowed its cancellation"),
    (Backend(ConvertingAgent), conformance.verify_backend_cancellation,
     "turned its cancellation into RuntimeError: interrupted"),
    (Backend(StubbornAgent), conformance.verify_backend_cancellation, "did not end within 0.5s of being cancelled"),
    (Backend(CritiqueFailsAgent), conformance.verify_backend_in_engine,
     r"failed: QuorumLost: .*dev-\d in critique: RuntimeError: critique is broken"),
    (Backend(NotReentrantAgent), conformance.verify_backend_concurrency,
     "connection already in use"),
]


@pytest.mark.parametrize(("backend", "verify", "message"), BAD_BACKENDS,
                         ids=[f"{type(b).__name__}-{b.agent_class.__name__}-{v.__name__}" for b, v, _ in BAD_BACKENDS])
async def test_a_bad_backend_fails_with_a_clear_message(backend: Any, verify: Verify, message: str) -> None:
    with pytest.raises(ConformanceError, match=message) as failed:
        await verify(backend, OPTIONS, QUICK) if verify.__code__.co_argcount > 2 else await verify(backend, OPTIONS)
    assert backend.name in str(failed.value) or "has no name" in str(failed.value)


GOOD_BACKENDS = [Backend(), ScriptedBackend()]
BACKEND_CHECKS = [
    conformance.verify_backend_contract,
    conformance.verify_backend_rejects_unknown_options,
    conformance.verify_agent_replies,
    conformance.verify_backend_hostile_inputs,
    conformance.verify_backend_cancellation,
    conformance.verify_backend_in_engine,
    conformance.verify_backend_concurrency,
]


@pytest.mark.parametrize("backend", GOOD_BACKENDS, ids=lambda b: type(b).__name__)
@pytest.mark.parametrize("verify", BACKEND_CHECKS, ids=lambda v: v.__name__)
async def test_a_good_backend_passes(backend: Any, verify: Verify) -> None:
    await verify(backend, {"model": "m"})


# -- checks --------------------------------------------------------------------------------


def result_of(check: Any, score: float = 1.0) -> CheckResult:
    return CheckResult(check.name, check.kind, score >= 0.5, score, ("fine",), 0.0)


@dataclass
class Check:
    name: str = "kit-check"
    kind: str = "kit"
    calls: list[str] = field(default_factory=list)

    async def run(self, task: Task, proposal: Proposal) -> Any:
        await asyncio.sleep(0)
        return result_of(self)


class SyncRunCheck(Check):
    def run(self, task: Task, proposal: Proposal) -> Any:  # type: ignore[override]
        return result_of(self)


class OneArgumentCheck(Check):
    async def run(self, proposal: Proposal) -> Any:  # type: ignore[override]
        return result_of(self)


class SleepingSyncCheck(Check):
    """Blocks, but as a plain def: the engine runs it in a worker thread, so it conforms."""

    def run(self, task: Task, proposal: Proposal) -> Any:  # type: ignore[override]
        time.sleep(0.01)
        return result_of(self)


class DictCheck(Check):
    async def run(self, task: Task, proposal: Proposal) -> Any:
        return {"passed": True, "score": 1.0}


class OutOfRangeCheck(Check):
    async def run(self, task: Task, proposal: Proposal) -> Any:
        result = object.__new__(CheckResult)  # skips CheckResult's own range check
        for name, value in zip(("name", "kind", "passed", "score", "diagnostics", "duration_seconds"),
                               (self.name, self.kind, True, 1.5, (), 0.0), strict=True):
            object.__setattr__(result, name, value)
        return result


class ScoreRaisingCheck(Check):
    async def run(self, task: Task, proposal: Proposal) -> Any:
        return result_of(self, score=1.5)


class BorrowedNameCheck(Check):
    async def run(self, task: Task, proposal: Proposal) -> Any:
        return CheckResult("lint", "lint", True, 1.0)


class AsciiCheck(Check):
    async def run(self, task: Task, proposal: Proposal) -> Any:
        proposal.content.encode("ascii")
        return result_of(self)


class HangingCheck(Check):
    async def run(self, task: Task, proposal: Proposal) -> Any:
        await asyncio.Event().wait()


class SleepingCheck(Check):
    async def run(self, task: Task, proposal: Proposal) -> Any:
        time.sleep(1.0)
        return result_of(self)


class SwallowingCheck(Check):
    async def run(self, task: Task, proposal: Proposal) -> Any:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(GUARD)
        return result_of(self)


class FlakyUnderLoadCheck(Check):
    in_flight = 0

    async def run(self, task: Task, proposal: Proposal) -> Any:
        FlakyUnderLoadCheck.in_flight += 1
        try:
            await asyncio.sleep(0.01)
            if FlakyUnderLoadCheck.in_flight > 1:
                raise RuntimeError("not thread safe")
            return result_of(self)
        finally:
            FlakyUnderLoadCheck.in_flight -= 1


BAD_CHECKS: list[tuple[Any, Verify, str]] = [
    (Check(kind=""), conformance.verify_check_contract, "has no kind"),
    (OneArgumentCheck(), conformance.verify_check_contract,
     r"run\(proposal: 'Proposal'\) -> 'Any' cannot be called as run\(task, proposal\)"),
    (DictCheck(), conformance.verify_check_result, r"run\(\) returned dict, not a CheckResult"),
    (OutOfRangeCheck(), conformance.verify_check_result, r"returned score 1\.5: a number in \[0, 1\]"),
    (ScoreRaisingCheck(), conformance.verify_check_result, r"raised ValueError: .*outside \[0, 1\]"),
    (BorrowedNameCheck(), conformance.verify_check_result, "it must carry the check's own name and kind"),
    (AsciiCheck(), conformance.verify_check_hostile_inputs, r"run\(\) on [a-z ]+ raised UnicodeEncodeError"),
    (HangingCheck(), conformance.verify_check_result, r"run\(\) did not finish within 0\.5s"),
    (SleepingCheck(), conformance.verify_check_result, "blocked the event loop for"),
    (SwallowingCheck(), conformance.verify_check_cancellation, "swallowed its cancellation"),
    (FlakyUnderLoadCheck(), conformance.verify_check_concurrency, "one raised RuntimeError: not thread safe"),
    (DictCheck(), conformance.verify_check_in_engine, "the engine reported .check error: TypeError: returned dict"),
]


@pytest.mark.parametrize(("check", "verify", "message"), BAD_CHECKS,
                         ids=[f"{type(c).__name__}-{v.__name__}" for c, v, _ in BAD_CHECKS])
async def test_a_bad_check_fails_with_a_clear_message(check: Any, verify: Verify, message: str) -> None:
    with pytest.raises(ConformanceError, match=message) as failed:
        await verify(check, QUICK) if verify.__code__.co_argcount > 1 else await verify(check)
    assert type(check).__name__ in str(failed.value)


CHECK_VERIFIERS = [
    conformance.verify_check_contract,
    conformance.verify_check_result,
    conformance.verify_check_hostile_inputs,
    conformance.verify_check_concurrency,
    conformance.verify_check_cancellation,
    conformance.verify_check_in_engine,
]


@pytest.mark.parametrize("check", [Check(), ScriptedCheck(), SyncRunCheck(), SleepingSyncCheck()],
                         ids=lambda c: type(c).__name__)
@pytest.mark.parametrize("verify", CHECK_VERIFIERS, ids=lambda v: v.__name__)
async def test_a_good_check_passes(check: Any, verify: Verify) -> None:
    await verify(check)


# -- as an author uses it --------------------------------------------------------------------

AUTHOR_TESTS = '''
from orchestrator_core.models import AgentConfig
from orchestrator_core.testing import AgentBackendConformance, CheckConformance, ScriptedBackend, ScriptedCheck


class Lenient(ScriptedBackend):
    def create(self, config: AgentConfig):
        return super().create(AgentConfig(config.agent_id, config.role, config.index, config.council_size))


class TestGoodBackend(AgentBackendConformance):
    backend = ScriptedBackend()


class TestGoodCheck(CheckConformance):
    check = ScriptedCheck()


class TestLenientBackend(AgentBackendConformance):
    backend = Lenient(name="lenient")
'''


def test_an_author_subclasses_the_kit_and_pytest_reports_what_failed(tmp_path: Path) -> None:
    (tmp_path / "test_author.py").write_text(textwrap.dedent(AUTHOR_TESTS))
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=GUARD * 5, check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 19 passed" in result.stdout, result.stdout
    assert "FAILED test_author.py::TestLenientBackend::test_create_rejects_unknown_options" in result.stdout
    assert "Lenient 'lenient'.create() accepted the unknown option" in result.stdout


def conformance_run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """pytest with the --orchestrator-conformance option, in an empty directory (no test files)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ORCH_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", *args],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=GUARD * 5, check=False,
    )


def test_the_option_runs_the_kit_on_an_installed_entry_point(tmp_path: Path) -> None:
    require_installed(["orchestrator-sample-plugin"])
    result = conformance_run(tmp_path, "--orchestrator-conformance=sample",
                             '--orchestrator-conformance-options={"style": "terse"}')
    assert result.returncode == 0, result.stdout + result.stderr
    assert "14 passed" in result.stdout  # loading, 7 verifications of the backend, 6 of the check


def test_the_option_fails_a_bad_plugin_and_a_missing_one_by_name(tmp_path: Path) -> None:
    require_installed(["orchestrator-hostile-plugin"])
    result = conformance_run(tmp_path, "--orchestrator-conformance=hostile-check-wrong-type,no-such-plugin",
                             env={"ORCHESTRATOR_HOSTILE_PLUGINS": "hostile-check-wrong-type"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert ("FAILED ::orchestrator-conformance[hostile-check-wrong-type]::check hostile-wrong-type::"
            "verify_check_result") in result.stdout
    assert "WrongTypeCheck 'hostile-wrong-type'.run() returned dict, not a CheckResult" in result.stdout
    assert "no installed plugin has the entry point 'no-such-plugin'" in result.stdout
