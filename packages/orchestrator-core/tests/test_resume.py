"""Resume, not redo: a deliberation stopped mid-run (its worker died) and resumed from its
stored record with :meth:`Journal.from_record` makes no completed agent call or check again,
and ends with the record an uninterrupted run makes.

The first run is paced: each agent call and check waits for a permit, and the test gives
one at a time, waiting for its checkpoint, so the k-th completion is a known call. The
"crash" happens in the checkpoint of the k-th completion, after its flush (the call is
durable) or before it (the call completed, but its product never reached the store): from
then on the store accepts nothing, as a dead process writes nothing, and the run is cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import pytest
from core_support import HANG_GUARD, until

from orchestrator_core.deliberation import DeliberationEngine, UsageMeter
from orchestrator_core.errors import AgentError, QuorumLost
from orchestrator_core.events import (
    AgentFailed,
    CheckCompleted,
    CritiqueWritten,
    DeliberationEvent,
    ProposalGenerated,
    ProposalRevised,
)
from orchestrator_core.journal import Journal
from orchestrator_core.models import AgentReply, CheckResult, Critique, Phase, Proposal, Task, TokenUsage
from orchestrator_core.records import DeliberationRecord, RecordStatus, SQLiteStore
from orchestrator_core.records.writer import RecordLost, RecordWriter
from orchestrator_core.scoring import Scorer
from orchestrator_core.testing import ScriptedAgent, ScriptedCheck

TASK = Task(role="DEV", description="Write a function that adds two numbers")

Key = tuple[str, str]
"""An agent call (agent id, phase; one round) or a check run ("check", proposal id)."""


class Pacer:
    """Lets the paced calls complete one at a time, in the order they began (or all at once
    when ``open``)."""

    def __init__(self, *, open: bool = False) -> None:
        self.open = open
        self._permits = asyncio.Semaphore(0)

    async def wait(self) -> None:
        if not self.open:
            await self._permits.acquire()

    def release(self) -> None:
        self._permits.release()


@dataclass
class PacedAgent(ScriptedAgent):
    """A scripted agent whose calls each wait for a permit of ``pacer`` before replying, and
    are logged in ``log`` (with its peers') as they begin."""

    pacer: Pacer | None = None
    log: list[Key] | None = None

    async def _reply(self, phase: Phase, script: object, default: str, *args: object) -> AgentReply:
        if self.log is not None:
            self.log.append((self.agent_id, phase.value))
        try:
            return await super()._reply(phase, script, default, *args)  # type: ignore[arg-type]
        finally:  # a failure waits for its permit too
            if self.pacer is not None:
                await self.pacer.wait()


@dataclass
class CountingCheck(ScriptedCheck):
    """A scripted check that counts its runs per proposal and waits for ``pacer`` first."""

    pacer: Pacer | None = None
    runs: list[str] | None = None

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        if self.runs is not None:
            self.runs.append(proposal.proposal_id)
        if self.pacer is not None:
            await self.pacer.wait()
        return await super().run(task, proposal)


def revise(task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> str:
    return f"{proposal.content} / after {', '.join(c.critic_id for c in feedback)}"


def council(
    pacer: Pacer | None = None, failing: str = "", truncating: str = "dev-3"
) -> list[PacedAgent]:
    """Three agents with distinct usage (dev-n costs n*(10, 5)), whose revisions show their
    feedback, logging their calls in one list; ``failing`` fails in its critique,
    ``truncating`` marks its replies truncated."""
    log: list[Key] = []
    return [
        PacedAgent(
            agent_id=f"dev-{n}", revision=revise, pacer=pacer, log=log, usage=TokenUsage(10 * n, 5 * n),
            truncated=f"dev-{n}" == truncating,
            fail_in={Phase.CRITIQUE: AgentError("model down")} if f"dev-{n}" == failing else {},
        )
        for n in (1, 2, 3)
    ]


def engine(check: CountingCheck, quorum: int = 2) -> DeliberationEngine:
    return DeliberationEngine(checks=(check,), scorer=Scorer(), quorum=quorum)


class CrashableStore(SQLiteStore):
    """The real SQLite store, until ``crashed``: from then on it writes nothing (the process
    that wrote is dead), while the run it served is unwinding."""

    crashed = False

    async def update(self, record: DeliberationRecord) -> bool:
        if self.crashed:
            return True
        return bool(await super().update(record) is not False)


def fresh_record(deliberation_id: str) -> DeliberationRecord:
    return DeliberationRecord(deliberation_id, "deliberate", "DEV", TASK, RecordStatus.RUNNING, time.time())


async def opened(path: Path) -> CrashableStore:
    store = CrashableStore(path)
    await store.open()
    return store


@dataclass
class Finished:
    record: DeliberationRecord
    calls: list[Key]
    checks: list[str]


async def run_to_the_end(
    store: SQLiteStore, record: DeliberationRecord, agents: list[PacedAgent], check: CountingCheck,
    *, quorum: int = 2,
) -> Finished:
    """Run ``record`` (a new one, or one read back from the store) to its end, with a journal
    and a checkpoint, as a queued run does."""
    assert check.runs is not None
    writer = RecordWriter(store, record)
    writer.start()
    meter = UsageMeter()
    try:
        await engine(check, quorum).deliberate(
            TASK, agents, 1, deliberation_id=record.deliberation_id, on_event=writer.observe, usage=meter,
            journal=Journal.from_record(record), checkpoint=writer.flush,
        )
    except QuorumLost as lost:
        final = await writer.finish(RecordStatus.FAILED, usage=meter.total, error=str(lost), error_kind="QuorumLost")
    else:
        final = await writer.finish(RecordStatus.SUCCEEDED, usage=meter.total)
    return Finished(final, made(agents), list(check.runs))


def made(agents: list[PacedAgent]) -> list[Key]:
    """The council's calls in the order they began."""
    return list(agents[0].log or ())


async def interrupted(
    store: CrashableStore, k: int, *, before_checkpoint: bool, failing: str = "", quorum: int = 2
) -> tuple[list[Key], list[str]]:
    """Run d1 until its k-th completed call or check, and crash in that one's checkpoint;
    returns the agent calls made (cut short ones included) and the check runs begun."""
    pacer = Pacer()
    agents = council(pacer, failing=failing)
    check = CountingCheck(pacer=pacer, runs=[])
    record = fresh_record("d1")
    await store.create(record)
    writer = RecordWriter(store, record)
    writer.start()
    done = 0

    async def checkpoint() -> None:
        nonlocal done
        if done + 1 == k and before_checkpoint:
            await crash()
        await writer.flush()
        done += 1
        if done == k:
            await crash()

    async def crash() -> None:
        store.crashed = True
        run.cancel()
        await asyncio.Event().wait()  # until the cancellation reaches this call

    def checkpointed(n: int) -> bool:
        return done >= n or run.done()

    run = asyncio.create_task(engine(check, quorum).deliberate(
        TASK, agents, 1, deliberation_id="d1", on_event=writer.observe, checkpoint=checkpoint,
    ))
    for completed in range(1, k + 1):
        pacer.release()
        await until(partial(checkpointed, completed), f"completion {completed} was checkpointed")
    async with asyncio.timeout(HANG_GUARD):
        await asyncio.wait([run])
    assert run.cancelled() or isinstance(run.exception(), QuorumLost)
    await writer.finish(RecordStatus.CANCELLED)  # writes nothing: the store has crashed
    store.crashed = False
    return made(agents), list(check.runs or ())


def normalised(record: DeliberationRecord) -> DeliberationRecord:
    """``record`` without what differs between two runs of the same deliberation: its id,
    its times and the checks' durations."""
    def result(r: CheckResult) -> CheckResult:
        return replace(r, duration_seconds=0.0)

    outcome = record.outcome
    if outcome is not None:
        outcome = replace(
            outcome, deliberation_id="", duration_seconds=0.0,
            results=tuple(replace(r, checks=tuple(result(c) for c in r.checks)) for r in outcome.results),
        )
    return replace(
        record, deliberation_id="", created_at=0.0, finished_at=None, updated_at=0.0, phases=(), outcome=outcome,
        calls=tuple(replace(c, started_at=0.0, finished_at=0.0) for c in record.calls),
        checks=tuple(replace(c, result=result(c.result), started_at=0.0, finished_at=0.0) for c in record.checks),
    )


async def reference(store: SQLiteStore, *, failing: str = "", quorum: int = 2) -> Finished:
    record = fresh_record("reference")
    await store.create(record)
    return await run_to_the_end(
        store, record, council(failing=failing), CountingCheck(runs=[]), quorum=quorum
    )


ORDER: list[Key] = [
    *[(f"dev-{n}", "generate") for n in (1, 2, 3)],
    *[(f"dev-{n}", "critique") for n in (1, 2, 3)],
    *[(f"dev-{n}", "revise") for n in (1, 2, 3)],
    *[("check", f"dev-{n}-v1") for n in (1, 2, 3)],
]
"""The completions of an uninterrupted paced run, in order (calls end in the order they began)."""


@pytest.mark.parametrize("before_checkpoint", [False, True], ids=["after-checkpoint", "before-checkpoint"])
@pytest.mark.parametrize("k", range(1, len(ORDER) + 1))
async def test_a_resumed_run_makes_no_completed_call_again_and_ends_as_an_uninterrupted_one(
    tmp_path: Path, k: int, before_checkpoint: bool
) -> None:
    store = await opened(tmp_path / "records.sqlite3")
    try:
        expected = await reference(store)
        first_calls, first_checks = await interrupted(store, k, before_checkpoint=before_checkpoint)
        stored = await store.get("d1")
        assert stored is not None
        assert stored.status is RecordStatus.RUNNING
        resumed = await run_to_the_end(store, stored, council(), CountingCheck(runs=[]))
        assert await store.get("d1") == resumed.record
    finally:
        await store.close()

    durable = ORDER[:k] if not before_checkpoint else ORDER[:k - 1]
    remaining = [key for key in ORDER if key not in durable]
    # The resumed run makes exactly what was not durable, each once, in the same order.
    assert resumed.calls == [key for key in remaining if key[0] != "check"]
    assert resumed.checks == [proposal for kind, proposal in remaining if kind == "check"]
    # Over both runs each call and check ran once, but those the crash cut short (in flight,
    # or completed without reaching the store): they ran twice.
    first = Counter(first_calls) + Counter(("check", p) for p in first_checks)
    second = Counter(resumed.calls) + Counter(("check", p) for p in resumed.checks)
    cut_short = first - Counter(ORDER[:k])
    undurable = Counter(ORDER[:k]) - Counter(durable)
    assert first + second == Counter(ORDER) + cut_short + undurable
    # The record is the uninterrupted run's: proposals, critiques, checks, calls, usage.
    assert normalised(resumed.record) == normalised(expected.record)
    assert resumed.record.usage == TokenUsage(60 * 3, 30 * 3)
    assert resumed.record.outcome is not None
    assert resumed.record.outcome.usage == resumed.record.usage
    assert [(p.phase, p.round) for p in resumed.record.phases] == [
        ("generate", 0), ("critique", 1), ("revise", 1), ("check", 0)]
    phases = resumed.record.phases
    assert all(p.started_at <= p.finished_at for p in phases)
    assert all(a.finished_at <= b.started_at for a, b in itertools.pairwise(phases))


FAILING_ORDER: list[Key] = [
    *[(f"dev-{n}", "generate") for n in (1, 2, 3)],
    *[(f"dev-{n}", "critique") for n in (1, 2, 3)],  # dev-2's fails: dev-3 gets no feedback
    ("dev-1", "revise"),
    *[("check", p) for p in ("dev-1-v1", "dev-2-v0", "dev-3-v0")],
]


@pytest.mark.parametrize("k", range(5, len(FAILING_ORDER) + 1))
async def test_a_journaled_failure_keeps_its_agent_out(tmp_path: Path, k: int) -> None:
    store = await opened(tmp_path / "records.sqlite3")
    try:
        expected = await reference(store, failing="dev-2")
        await interrupted(store, k, before_checkpoint=False, failing="dev-2")
        stored = await store.get("d1")
        assert stored is not None
        agents = council()  # dev-2 would not fail now: the journal says it did
        resumed = await run_to_the_end(store, stored, agents, CountingCheck(runs=[]))
    finally:
        await store.close()

    assert [(f.agent_id, f.phase, f.round) for f in expected.record.failures] == [("dev-2", Phase.CRITIQUE, 1)]
    assert agents[1].calls == []
    assert resumed.calls == [key for key in FAILING_ORDER[k:] if key[0] != "check"]
    assert resumed.checks == [p for kind, p in FAILING_ORDER[k:] if kind == "check"]
    assert normalised(resumed.record) == normalised(expected.record)
    assert resumed.record.usage == expected.record.usage


async def test_a_journaled_failure_that_lost_the_quorum_loses_it_again(tmp_path: Path) -> None:
    store = await opened(tmp_path / "records.sqlite3")
    try:
        expected = await reference(store, failing="dev-2", quorum=3)
        await interrupted(store, 5, before_checkpoint=False, failing="dev-2", quorum=3)
        stored = await store.get("d1")
        assert stored is not None
        agents = council()
        resumed = await run_to_the_end(store, stored, agents, CountingCheck(runs=[]), quorum=3)
    finally:
        await store.close()

    assert expected.record.status is RecordStatus.FAILED
    assert resumed.record.status is RecordStatus.FAILED
    assert resumed.record.error == expected.record.error
    assert resumed.calls == []  # dev-2's journaled failure loses the quorum before any call
    assert [(f.agent_id, f.phase) for f in resumed.record.failures] == [("dev-2", Phase.CRITIQUE)]


async def test_with_a_checkpoint_each_completed_call_is_stored_before_its_result_is_used(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "records.sqlite3")
    await store.open()
    record = fresh_record("d1")
    await store.create(record)
    writer = RecordWriter(store, record)
    writer.start()
    product: list[DeliberationEvent] = []
    seen: list[str] = []

    def observe(event: DeliberationEvent) -> None:
        writer.observe(event)
        if isinstance(event, ProposalGenerated | ProposalRevised | CritiqueWritten | AgentFailed | CheckCompleted):
            product.append(event)

    async def checkpoint() -> None:
        latest = product[-1]  # emitted right before this checkpoint, nothing in between
        await writer.flush()
        stored = await store.get("d1")
        assert stored is not None
        match latest:
            case ProposalGenerated(proposal=p) | ProposalRevised(proposal=p):
                assert p in stored.proposals
                seen.append(p.proposal_id)
            case CritiqueWritten(critique=c):
                assert c in stored.critiques
                seen.append(f"critique by {c.critic_id}")
            case AgentFailed(failure=f):
                assert f in stored.failures
                seen.append(f"failure of {f.agent_id}")
            case CheckCompleted(proposal_id=proposal_id, result=result):
                assert (proposal_id, result) in [(c.proposal_id, c.result) for c in stored.checks]
                seen.append(f"check of {proposal_id}")

    try:
        await engine(CountingCheck(), quorum=1).deliberate(
            TASK, council(failing="dev-2"), 1, deliberation_id="d1", on_event=observe, checkpoint=checkpoint
        )
        await writer.finish(RecordStatus.SUCCEEDED)
    finally:
        await store.close()
    assert sorted(seen) == sorted([
        "dev-1-v0", "dev-2-v0", "dev-3-v0", "critique by dev-1", "failure of dev-2", "critique by dev-3",
        "dev-1-v1", "check of dev-1-v1", "check of dev-2-v0", "check of dev-3-v0",
    ])


class RefusingStore(SQLiteStore):
    """The real store, refusing every write once ``taken`` (another worker took the record)."""

    taken = False

    async def update(self, record: DeliberationRecord) -> bool:
        if self.taken:
            return False
        return bool(await super().update(record) is not False)


async def test_a_run_whose_record_was_taken_over_stops_at_its_next_checkpoint(tmp_path: Path) -> None:
    store = RefusingStore(tmp_path / "records.sqlite3")
    await store.open()
    record = fresh_record("d1")
    await store.create(record)
    writer = RecordWriter(store, record)
    writer.start()
    store.taken = True
    agents = council(Pacer(open=True))
    try:
        with pytest.raises(RecordLost):
            await engine(CountingCheck()).deliberate(
                TASK, agents, 1, deliberation_id="d1", on_event=writer.observe, checkpoint=writer.flush
            )
        await writer.finish(RecordStatus.CANCELLED)
        assert writer.lost.is_set()
        stored = await store.get("d1")
    finally:
        await store.close()
    assert stored == record  # nothing this run did was written
    assert [phase for agent in agents for phase in agent.calls] == [Phase.GENERATE] * 3  # no further phase
