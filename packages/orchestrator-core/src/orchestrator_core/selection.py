"""Choosing an orchestration's winner: the top score, or a selecting agent's choice among the top k.

A selecting agent (an ARCHITECT) is asked for a JSON object ``{"choice": n, "rationale": "..."}``
naming a 1-based candidate number. Models do not always comply, so the reply is read
leniently: a JSON object anywhere in the text (fenced or not), else a ``CHOICE: n`` line.
A reply that names no valid candidate, or a selector that fails, falls back to the top score.
The selector is called as every agent is (:func:`~orchestrator_core.agent_calls.call_agent`):
within the agent timeout, a timeout reported to its breaker, an empty reply a failure.

Only viable proposals (see :mod:`orchestrator_core.scoring`) are candidates: a winner has
passed its checks. With none, there is nothing to select, and :func:`select_winner` raises
:class:`~orchestrator_core.errors.NoViableProposal`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from orchestrator_core.agent_calls import AgentCallFailed, backend_of, call_agent
from orchestrator_core.errors import NoViableProposal
from orchestrator_core.hookspecs import SelectingAgent, identity_of
from orchestrator_core.models import AgentCall, Phase, RankedProposal, Selection, Task
from orchestrator_core.telemetry import NO_TELEMETRY, AgentCallScope, Telemetry

_CHOICE_LINE = re.compile(r"^\W*choice\W*[:=]\s*#?\s*(\d+)\b.*$", re.IGNORECASE | re.MULTILINE)


MAX_SELECTION_CHARS = 64_000
"""Longer selection replies are read up to this length: the choice comes first or not at all."""


def parse_choice(text: str, candidates: Sequence[RankedProposal]) -> tuple[int, str] | None:
    """The 0-based index of the chosen candidate and the rationale, or None.

    Whatever the model wrote (deeply nested JSON, huge numbers), this returns, never raises.
    """
    try:
        return _parse_choice(text[:MAX_SELECTION_CHARS], candidates)
    except (RecursionError, ValueError, OverflowError, TypeError):
        return None


def _parse_choice(text: str, candidates: Sequence[RankedProposal]) -> tuple[int, str] | None:
    for obj in _json_objects(text):
        index = _candidate_index(obj.get("choice"), candidates)
        if index is not None:
            rationale = str(obj.get("rationale") or "").strip()
            return index, rationale or _without_json(text)
    match = _CHOICE_LINE.search(text)
    if match:
        index = _candidate_index(match.group(1), candidates)
        if index is not None:
            rationale = (text[: match.start()] + text[match.end():]).strip()
            return index, rationale
    return None


def _json_objects(text: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        position = text.find("{", end)
    return found


def _without_json(text: str) -> str:
    return re.sub(r"```(?:json)?|\{.*\}", "", text, flags=re.DOTALL).strip()


def _candidate_index(choice: object, candidates: Sequence[RankedProposal]) -> int | None:
    if isinstance(choice, bool):
        return None
    if isinstance(choice, str):
        for index, candidate in enumerate(candidates):
            if choice.strip() in (candidate.proposal.proposal_id, candidate.proposal.author_id):
                return index
        digits = re.fullmatch(r"\s*#?\s*(\d+)\s*", choice)
        choice = int(digits.group(1)) if digits else None
    if isinstance(choice, int) and 1 <= choice <= len(candidates):
        return choice - 1
    return None


def by_score(candidates: Sequence[RankedProposal], note: str = "") -> Selection:
    """The top-ranked candidate, with a rationale from its score."""
    winner = candidates[0]
    rationale = (
        f"{winner.proposal.author_id}'s proposal ranks first by check score "
        f"({winner.score:.3f}) among {len(candidates)} candidate(s)"
    )
    if note:
        rationale = f"{rationale}; {note}"
    return Selection(winner=winner, candidates=tuple(candidates), rationale=rationale, selected_by="score")


async def select_winner(
    task: Task,
    ranked: Sequence[RankedProposal],
    selector: SelectingAgent | None,
    *,
    top_k: int,
    timeout_seconds: float,
    telemetry: Telemetry = NO_TELEMETRY,
    scope: AgentCallScope | None = None,
    on_call: Callable[[AgentCall], None] | None = None,
) -> Selection:
    """Pick the winner among the top ``top_k`` viable candidates. The selector's call is made
    in ``telemetry``'s ``scope`` and its record goes to ``on_call``, as every agent call's."""
    viable = [candidate for candidate in ranked if candidate.viable]
    if not viable:
        raise NoViableProposal(
            f"no viable proposal: none of the {len(ranked)} ranked proposal(s) passed its checks"
        )
    candidates = tuple(viable[: max(1, top_k)])
    if selector is None or len(candidates) == 1:
        return by_score(candidates)
    try:
        reply = await call_agent(
            selector,
            Phase.SELECT,
            partial(selector.select, task, [c.proposal for c in candidates]),
            timeout_seconds=timeout_seconds,
            telemetry=telemetry,
            scope=scope,
            on_call=on_call,
        )
    except AgentCallFailed as failed:  # the selector's failure must not lose the deliberation
        fallback = by_score(candidates, f"the selector {selector.agent_id} failed: {failed.failure.error}")
        return replace(fallback, usage=failed.usage, failure=failed.failure)
    parsed = parse_choice(reply.text, candidates)
    if parsed is None:
        fallback = by_score(candidates, f"{selector.agent_id} named no valid candidate")
        return replace(fallback, usage=reply.usage)
    index, rationale = parsed
    return Selection(
        winner=candidates[index],
        candidates=candidates,
        rationale=rationale or f"chosen by {selector.agent_id}",
        selected_by=selector.agent_id,
        usage=reply.usage,
    )


def selector_scope(deliberation_id: str, task: Task, selector: SelectingAgent | None) -> AgentCallScope | None:
    """The telemetry scope of the selector's call (None without a selector)."""
    if selector is None:
        return None
    return AgentCallScope(
        deliberation_id, task.role, selector.agent_id, backend_of(selector), identity_of(selector).model,
        Phase.SELECT, 0, task=task.description,
    )
