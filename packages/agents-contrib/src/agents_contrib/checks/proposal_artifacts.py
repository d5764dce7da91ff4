"""A proposal's artifacts, parsed once and shared by every check that judges it.

The engine runs the policy, lint and dry-run checks of a proposal at once, and each needs
the same artifacts. Parsing a long reply takes milliseconds of CPU (``ast`` and YAML
parses among them), so it runs in a worker thread, once per proposal content: checks
asking meanwhile await the same parse, and checks asking later (the dry-run, after its
wait for a heavy-check slot) find the result in a small cache of recent proposals.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from agents_contrib.artifacts import Artifact, extract_artifacts
from agents_contrib.resilience import LoopLocal
from orchestrator_core.models import Proposal

CACHED_PROPOSALS = 64
"""Proposal contents whose artifacts are kept: enough for every proposal of the deliberations
running at once to be parsed once for all of its checks."""

Parse = asyncio.Task[tuple[Artifact, ...]]


class ArtifactCache:
    """The artifacts of the last ``size`` proposal contents, per event loop (a parse in
    progress is a task of that loop); a content whose parse failed is parsed again next time."""

    def __init__(self, size: int = CACHED_PROPOSALS) -> None:
        self.size = size
        self._parses: LoopLocal[OrderedDict[str, Parse]] = LoopLocal(OrderedDict)

    async def artifacts_of(self, proposal: Proposal) -> tuple[Artifact, ...]:
        content = proposal.content
        parses = self._parses.get()
        parse = parses.get(content)
        if parse is None:
            parse = asyncio.create_task(asyncio.to_thread(extract_artifacts, content))
            parse.add_done_callback(lambda done: self._forget_failed(parses, content, done))
            parses[content] = parse
            while len(parses) > self.size:
                parses.popitem(last=False)
        else:
            parses.move_to_end(content)
        # Shielded: a check cancelled (timed out) while waiting must not cancel the parse
        # the other checks of the proposal are waiting for too.
        return await asyncio.shield(parse)

    @staticmethod
    def _forget_failed(parses: OrderedDict[str, Parse], content: str, parse: Parse) -> None:
        if (parse.cancelled() or parse.exception() is not None) and parses.get(content) is parse:
            del parses[content]


_SHARED = ArtifactCache()


async def artifacts_of(proposal: Proposal) -> tuple[Artifact, ...]:
    """The artifacts of ``proposal``, parsed off the event loop, once for every check."""
    return await _SHARED.artifacts_of(proposal)
