"""Counting a prompt's tokens: the model server's own tokenizer where it offers one, else an estimate.

The estimate is one token per three bytes of UTF-8, rounded up. Tokenizers of current
models average three and a half to four characters of English or code per token, so the
estimate usually counts more tokens than the model will; it can count fewer for text dense
in digits or symbols, which the margin kept for the chat template (see
:mod:`agents_contrib.context_window`) absorbs in all but extreme cases.
"""

from __future__ import annotations

import math
from typing import Protocol

BYTES_PER_TOKEN = 3
"""The estimate's divisor: conservative for English and code on byte-pair tokenizers."""


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` takes, estimated from its UTF-8 size (see the module's docstring)."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


class TokenCounter(Protocol):
    """Counts the tokens of a text as the model would see it."""

    name: str
    """How the count is made, for messages: ``"estimate"`` or the tokenizer's URL."""

    async def count(self, text: str) -> int: ...


class EstimatedTokens:
    """The estimate, for servers without a tokenizer endpoint."""

    name = "estimate (UTF-8 bytes / 3)"

    async def count(self, text: str) -> int:
        return estimate_tokens(text)


ESTIMATE = EstimatedTokens()
