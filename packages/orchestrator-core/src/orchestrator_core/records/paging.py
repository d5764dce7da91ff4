"""Pages of records: how large they are, and the tokens that resume a listing.

A page token is a keyset: the sort key (``created_at``, ``deliberation_id``) of the last
record a page holds, so records written while a client pages through neither repeat nor go
missing. Tokens are made and read here only; a transport copies them as opaque strings.
"""

from __future__ import annotations

import base64
import binascii
import json
import math

from orchestrator_core.errors import InvalidRequest
from orchestrator_core.records.model import DeliberationRecord, RecordPage

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_PAGE_TOKEN_CHARS = 512

_FOREIGN_TOKEN = (
    "page_token is not one this server issued: pass the next_page_token of the previous page "
    "unchanged, or none for the first page"
)


def page_size_of(requested: int) -> int:
    """The number of records a page holds: ``requested``, the default for 0, at most the maximum."""
    if requested < 0:
        raise InvalidRequest(f"page_size must not be negative (got {requested})")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def page_of(records: list[DeliberationRecord], limit: int) -> RecordPage:
    """A page of ``limit`` records from a query that fetched one more when another page follows."""
    page = tuple(records[:limit])
    token = encode_page_token(page[-1]) if len(records) > limit else ""
    return RecordPage(records=page, next_page_token=token)


def first_records(page: RecordPage, count: int) -> RecordPage:
    """The first ``count`` records of ``page``, with a token that resumes right after them
    (``page`` itself when it holds no more than that)."""
    if count >= len(page.records):
        return page
    if count < 1:
        raise ValueError("a shortened page keeps at least one record")
    kept = page.records[:count]
    return RecordPage(records=kept, next_page_token=encode_page_token(kept[-1]))


def encode_page_token(last: DeliberationRecord) -> str:
    """The token of a page whose last record is ``last``."""
    key = json.dumps({"c": last.created_at, "i": last.deliberation_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(key.encode()).decode()


def decode_page_token(token: str) -> tuple[float, str]:
    """The sort key a token resumes after. Raises InvalidRequest for anything this module
    did not make."""
    if len(token) > MAX_PAGE_TOKEN_CHARS:
        raise InvalidRequest(_FOREIGN_TOKEN)
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        created_at, deliberation_id = key["c"], key["i"]
        finite = isinstance(created_at, int | float) and math.isfinite(created_at)
    except (ValueError, UnicodeError, binascii.Error, TypeError, KeyError, OverflowError, RecursionError):
        raise InvalidRequest(_FOREIGN_TOKEN) from None
    if (
        not finite
        or isinstance(created_at, bool)
        or not isinstance(deliberation_id, str)
        or not deliberation_id.isprintable()
    ):
        raise InvalidRequest(_FOREIGN_TOKEN)
    return float(created_at), deliberation_id
