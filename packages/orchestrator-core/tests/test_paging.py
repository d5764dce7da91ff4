"""Page sizes and page tokens: made and read by the core only."""

from __future__ import annotations

import base64
import json

import pytest

from orchestrator_core.errors import InvalidRequest
from orchestrator_core.models import Task
from orchestrator_core.records import DeliberationRecord, RecordPage, RecordStatus
from orchestrator_core.records.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MAX_PAGE_TOKEN_CHARS,
    decode_page_token,
    encode_page_token,
    first_records,
    page_of,
    page_size_of,
)


def record(n: int) -> DeliberationRecord:
    return DeliberationRecord(f"d{n}", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, 1000.0 - n)


def test_a_token_resumes_after_the_record_it_was_made_from() -> None:
    assert decode_page_token(encode_page_token(record(3))) == (997.0, "d3")


def test_a_page_has_a_token_only_when_another_follows() -> None:
    records = [record(n) for n in range(4)]
    assert page_of(records, 3) == RecordPage(tuple(records[:3]), encode_page_token(records[2]))
    assert page_of(records[:3], 3) == RecordPage(tuple(records[:3]), "")


def test_a_shortened_page_resumes_right_after_its_last_record() -> None:
    page = RecordPage(tuple(record(n) for n in range(3)), next_page_token="after-d2")
    shortened = first_records(page, 2)
    assert shortened.records == page.records[:2]
    assert decode_page_token(shortened.next_page_token) == (999.0, "d1")
    assert first_records(page, 3) is page
    with pytest.raises(ValueError, match="at least one record"):
        first_records(page, 0)


def test_page_sizes_default_and_are_capped() -> None:
    assert page_size_of(0) == DEFAULT_PAGE_SIZE
    assert page_size_of(7) == 7
    assert page_size_of(MAX_PAGE_SIZE + 1) == MAX_PAGE_SIZE
    with pytest.raises(InvalidRequest, match=r"page_size must not be negative \(got -1\)"):
        page_size_of(-1)


def _token(key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "!!!!",
        "A" * (MAX_PAGE_TOKEN_CHARS + 1),
        _token({"c": "1", "i": "d1"}),
        _token({"c": True, "i": "d1"}),
        _token({"c": 1.0, "i": 7}),
        _token({"c": 1.0, "i": "d\x001"}),
        _token({"i": "d1"}),
        _token([1.0, "d1"]),
    ],
)
def test_a_token_this_server_did_not_issue_is_an_invalid_request_that_says_what_to_send(token: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_page_token(token)
    assert str(raised.value) == (
        "page_token is not one this server issued: pass the next_page_token of the previous page "
        "unchanged, or none for the first page"
    )
