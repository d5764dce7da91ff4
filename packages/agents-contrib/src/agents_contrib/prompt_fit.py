"""Fitting a prompt into a model's context window, beside the reply it must leave room for.

Critique, revise and select prompts embed other replies: the proposal under review, the
critiques it received, the candidates of a selection. When the rendered prompt would not
fit, those embedded texts are shortened, the longest first and all to the same length, each
keeping its head and tail around a visible marker that says how much was cut
(``[... 1,234 characters cut to fit the model's context ...]``); nothing is dropped
silently. The task itself, its constraints and its tests are never cut: when the prompt
does not fit even with every embedded text cut down to its marker, the call is refused
(:class:`~agents_contrib.backend_errors.PromptTooLong`) rather than sent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from agents_contrib.backend_errors import PromptTooLong
from agents_contrib.prompting import Prompt, PromptBook
from agents_contrib.tokens import TokenCounter
from orchestrator_core.models import Critique, Phase, Proposal, Task

log = logging.getLogger(__name__)

MARKER = "[... {count:,} characters cut to fit the model's context ...]"
HEAD_SHARE = 0.6
"""Of what is kept of a shortened text, the share from its start; the rest is its end."""
MAX_ROUNDS = 8
AIM = 0.95
"""Aim below the budget by this factor (less each round), so one round usually suffices."""


@dataclass(frozen=True)
class PromptBudget:
    """How many tokens a prompt may take, and how to count them.

    ``tokens`` is the window less the reply's budget and the chat template's margin; the
    other fields are there to explain a refusal.
    """

    tokens: int
    counter: TokenCounter
    window: int
    window_source: str
    reply_tokens: int
    margin_tokens: int


def shorten(text: str, cap: int) -> str:
    """``text`` in at most about ``cap`` characters, marker included: its head and tail kept
    (cut at line ends where that keeps most of them), its middle replaced by the marker."""
    if len(text) <= cap:
        return text
    keep = max(cap - len(MARKER.format(count=len(text))) - 2, 0)
    head = int(keep * HEAD_SHARE)
    tail = keep - head
    head_end = _line_break_before(text, head)
    tail_start = max(_line_start_after(text, len(text) - tail), head_end)
    marker = MARKER.format(count=tail_start - head_end)
    return "\n".join(part for part in (text[:head_end], marker, text[tail_start:]) if part)


def _line_break_before(text: str, position: int) -> int:
    """``position``, moved back to the last line break before it when that keeps half of it."""
    if position <= 0:
        return 0
    newline = text.rfind("\n", 0, position)
    return newline if newline >= position // 2 else position


def _line_start_after(text: str, position: int) -> int:
    """``position``, moved on to the next line's start when that keeps half of what follows."""
    if position >= len(text):
        return len(text)
    newline = text.find("\n", position)
    if newline == -1 or newline + 1 - position > (len(text) - position) // 2:
        return position
    return newline + 1


def cap_for(lengths: Sequence[int], cut: int) -> int:
    """The largest length L such that cutting every text longer than L down to L removes at
    least ``cut`` characters in all (0 when even that is not enough)."""
    if cut <= 0:
        return max(lengths, default=0)
    ordered = sorted(lengths, reverse=True)
    prefix = 0
    for k, length in enumerate(ordered, start=1):
        prefix += length
        level = math.floor((prefix - cut) / k)
        following = ordered[k] if k < len(ordered) else 0
        if level >= following:
            return max(level, 0)
    return 0


def prompt_text(prompt: Prompt) -> str:
    """What is counted of a prompt: both messages (the chat template's own tokens are the margin)."""
    return f"{prompt.system}\n{prompt.user}"


async def fit_prompt(
    book: PromptBook,
    role: str,
    phase: Phase,
    task: Task,
    budget: PromptBudget | None,
    *,
    proposal: Proposal | None = None,
    feedback: Sequence[Critique] = (),
    candidates: Sequence[Proposal] = (),
) -> Prompt:
    """The prompt for ``phase``, its embedded texts shortened as far as needed to fit ``budget``;
    whole when there is no budget (a model without a known window).

    Raises:
        PromptTooLong: not even with every embedded text cut to its marker.
    """

    def render(cap: int | None) -> Prompt:
        def cut(text: str) -> str:
            return text.strip() if cap is None else shorten(text.strip(), cap)

        return book.render(
            role,
            phase,
            task,
            proposal=replace(proposal, content=cut(proposal.content)) if proposal else None,
            feedback=[replace(critique, content=cut(critique.content)) for critique in feedback],
            candidates=[replace(candidate, content=cut(candidate.content)) for candidate in candidates],
        )

    prompt = render(None)
    if budget is None:
        return prompt
    used = await budget.counter.count(prompt_text(prompt))
    if used <= budget.tokens:
        return prompt
    embedded = [proposal.content] if proposal else []
    embedded += [critique.content for critique in feedback] + [candidate.content for candidate in candidates]
    lengths = [len(text.strip()) for text in embedded]
    cap = max(lengths, default=0)
    cut = 0
    for attempt in range(MAX_ROUNDS):
        if cap == 0:
            break
        chars_per_token = len(prompt_text(prompt)) / max(used, 1)
        target = budget.tokens * (AIM - attempt / 20)
        cut += math.ceil((used - target) * chars_per_token)
        cap = min(cap_for(lengths, cut), cap - 1)
        prompt = render(cap)
        used = await budget.counter.count(prompt_text(prompt))
        if used <= budget.tokens:
            log.info(
                "%s prompt shortened to fit %d tokens: embedded texts cut to %d characters each",
                phase.value, budget.tokens, cap,
            )
            return prompt
    if cap != 0:
        prompt = render(0)
        used = await budget.counter.count(prompt_text(prompt))
        if used <= budget.tokens:
            return prompt
    raise PromptTooLong(_refusal(phase, used, budget, shortened=bool(embedded)))


def _refusal(phase: Phase, used: int, budget: PromptBudget, *, shortened: bool) -> str:
    even = " even with the proposals and critiques it embeds cut to nothing" if shortened else ""
    return (
        f"the {phase.value} prompt takes {used:,} tokens{even} (counted by {budget.counter.name}), "
        f"but only {budget.tokens:,} fit: the model's context window holds {budget.window:,} tokens "
        f"({budget.window_source}), of which {budget.reply_tokens:,} are kept for the reply "
        f"(max_tokens) and {budget.margin_tokens} for the chat template; use a model with a larger "
        f"context (and the context_tokens option), lower max_tokens, or shorten the task"
    )
