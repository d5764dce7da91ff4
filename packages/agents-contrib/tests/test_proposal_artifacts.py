"""A proposal's artifacts are parsed once, in a worker thread, for all of its checks."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from checks_support import CALC_GOOD, CALC_TESTS, proposal, sandboxed_check, task

from agents_contrib.artifacts import Artifact, extract_artifacts
from agents_contrib.checks import proposal_artifacts
from agents_contrib.checks.lint import LintCheck
from agents_contrib.checks.policy import PolicyCheck
from agents_contrib.checks.proposal_artifacts import ArtifactCache


class CountedParse:
    """``extract_artifacts``, recording the thread of each call; ``gate``, when set, holds
    every call until it opens."""

    def __init__(self, gate: threading.Event | None = None, fail_first: bool = False) -> None:
        self.threads: list[int] = []
        self.started = threading.Event()
        self.gate = gate
        self.fail_first = fail_first

    def __call__(self, text: str) -> tuple[Artifact, ...]:
        self.threads.append(threading.get_ident())
        self.started.set()
        if self.gate is not None:
            self.gate.wait()
        if self.fail_first and len(self.threads) == 1:
            raise ValueError("parser exploded")
        return extract_artifacts(text)


@pytest.fixture
def parse(monkeypatch: pytest.MonkeyPatch) -> CountedParse:
    counted = CountedParse()
    monkeypatch.setattr(proposal_artifacts, "extract_artifacts", counted)
    return counted


async def test_the_checks_of_a_proposal_share_one_parse_off_the_event_loop(parse: CountedParse,
                                                                            tmp_path: Path) -> None:
    checks = [PolicyCheck(), LintCheck(), sandboxed_check(tmp_path)]

    results = await asyncio.gather(*(check.run(task(tests=CALC_TESTS), proposal(CALC_GOOD)) for check in checks))

    assert [r.name for r in results] == ["policy", "lint", "dryrun"]
    assert results[0].passed, results[0].diagnostics
    assert results[2].passed, results[2].diagnostics
    assert any(line.startswith("artifact 2 (python): ruff") for line in results[1].diagnostics)
    assert len(parse.threads) == 1
    assert parse.threads[0] != threading.get_ident()  # not the event loop's thread
    await checks[1].run(task(), proposal(CALC_GOOD, proposal_id="p2"))  # the same content, later
    assert len(parse.threads) == 1
    await checks[1].run(task(), proposal(CALC_GOOD + "\n"))
    assert len(parse.threads) == 2


async def test_a_caller_cancelled_while_waiting_leaves_the_parse_to_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    parse = CountedParse(gate)
    monkeypatch.setattr(proposal_artifacts, "extract_artifacts", parse)
    cache = ArtifactCache()
    given_up = asyncio.create_task(cache.artifacts_of(proposal(CALC_GOOD)))
    waiting = asyncio.create_task(cache.artifacts_of(proposal(CALC_GOOD)))
    await asyncio.to_thread(parse.started.wait)

    given_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await given_up
    gate.set()

    assert await waiting == extract_artifacts(CALC_GOOD)
    assert len(parse.threads) == 1


async def test_the_cache_keeps_the_latest_contents_and_forgets_failed_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    parse = CountedParse(fail_first=True)
    monkeypatch.setattr(proposal_artifacts, "extract_artifacts", parse)
    cache = ArtifactCache(size=2)

    with pytest.raises(ValueError, match="parser exploded"):
        await cache.artifacts_of(proposal("x = 1"))
    assert await cache.artifacts_of(proposal("x = 1")) == extract_artifacts("x = 1")  # parsed again
    assert len(parse.threads) == 2

    for content in ("y = 2", "x = 1", "z = 3"):  # "y = 2" is now the least recently used
        await cache.artifacts_of(proposal(content))
    assert len(parse.threads) == 4
    await cache.artifacts_of(proposal("x = 1"))
    assert len(parse.threads) == 4
    await cache.artifacts_of(proposal("y = 2"))
    assert len(parse.threads) == 5
