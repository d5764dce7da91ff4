"""The retry loop shared by the model backends: backoff bounds, Retry-After, deadlines, cancellation."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from agents_contrib import backend_errors as errors
from agents_contrib.options import check_base_url, spread
from agents_contrib.resilience import (
    Deadline,
    Retryable,
    RetryPolicy,
    call_with_retries,
    refused_locally,
    retry_after_seconds,
)
from orchestrator_core.errors import AgentError, BackendUnavailable


@pytest.mark.parametrize("seed", range(20))
def test_backoff_stays_within_its_jittered_exponential_bounds(seed: int) -> None:
    policy = RetryPolicy(backoff_base_seconds=0.5, backoff_max_seconds=8.0)
    rng = random.Random(seed)
    for retry, cap in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]):
        delay = policy.backoff(retry, rng)
        assert cap / 2 <= delay <= cap


def test_backoff_jitter_spreads_agents_apart() -> None:
    policy = RetryPolicy(backoff_base_seconds=1.0)
    delays = {policy.backoff(2, random.Random(seed)) for seed in range(10)}
    assert len(delays) == 10


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1200", "retry-after": "9"}, 1.2),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "tomorrow-ish"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_every_documented_form(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds({"retry-after": header}, now=now.timestamp()) == 30.0


async def test_a_final_error_is_not_retried() -> None:
    calls = 0

    async def attempt(_: float) -> str:
        nonlocal calls
        calls += 1
        raise AgentError("bad request")

    with pytest.raises(AgentError, match="bad request"):
        await call_with_retries(attempt, policy=RetryPolicy(), deadline=Deadline(60))
    assert calls == 1


async def test_each_attempt_is_told_the_time_left() -> None:
    seen: list[float] = []

    async def attempt(seconds_left: float) -> str:
        seen.append(seconds_left)
        if len(seen) < 3:
            raise Retryable(BackendUnavailable("down"))
        return "up"

    async def no_wait(_: float) -> None:
        return None

    result = await call_with_retries(attempt, policy=RetryPolicy(backoff_base_seconds=0.0),
                                     deadline=Deadline(60), sleep=no_wait)
    assert result == "up"
    assert all(0 < left <= 60 for left in seen)
    assert seen == sorted(seen, reverse=True)


async def test_giving_up_keeps_the_error_type_and_says_how_often_it_tried() -> None:
    async def attempt(_: float) -> str:
        raise Retryable(BackendUnavailable("no server at http://x"))

    async def no_wait(_: float) -> None:
        return None

    with pytest.raises(BackendUnavailable) as raised:
        await call_with_retries(attempt, policy=RetryPolicy(max_retries=2), deadline=Deadline(60), sleep=no_wait)
    assert str(raised.value) == "no server at http://x (gave up after 3 attempt(s))"


async def test_a_failure_can_allow_fewer_retries_than_the_policy() -> None:
    waits: list[float] = []

    async def attempt(_: float) -> str:
        raise Retryable(BackendUnavailable("refused"), max_retries=1)

    async def record(delay: float) -> None:
        waits.append(delay)

    with pytest.raises(BackendUnavailable, match=r"gave up after 2 attempt\(s\)"):
        await call_with_retries(attempt, policy=RetryPolicy(max_retries=4), deadline=Deadline(60), sleep=record)
    assert len(waits) == 1
    with pytest.raises(BackendUnavailable, match=r"gave up after 1 attempt\(s\)"):
        await call_with_retries(attempt, policy=RetryPolicy(max_retries=0), deadline=Deadline(60), sleep=record)


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://127.3.2.1:8000/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://0.0.0.0:8000/v1", True),
        ("http://10.0.0.5:8000/v1", False),
        ("http://model-server:8000/v1", False),
        ("https://api.openai.com/v1", False),
    ],
)
def test_a_refused_connection_is_local_only_on_a_loopback_address(url: str, local: bool) -> None:
    refused = ConnectionRefusedError(111, "Connect call failed")
    wrapped = OSError("All connection attempts failed")
    wrapped.__cause__ = refused
    outer = RuntimeError("All connection attempts failed")
    outer.__context__ = wrapped
    assert refused_locally(outer, url) is local
    other = OSError("Network is unreachable")
    assert refused_locally(other, url) is False


async def test_cancellation_during_a_backoff_wait_propagates() -> None:
    waiting = asyncio.Event()

    async def attempt(_: float) -> str:
        raise Retryable(BackendUnavailable("down"))

    async def long_wait(_: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    call = asyncio.create_task(
        call_with_retries(attempt, policy=RetryPolicy(), deadline=Deadline(60), sleep=long_wait)
    )
    await waiting.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


@pytest.mark.parametrize(
    ("index", "size", "expected"),
    [(0, 1, 0.7), (0, 2, 0.5), (1, 2, 0.9), (0, 5, 0.5), (2, 5, 0.7), (4, 5, 0.9)],
)
def test_temperatures_are_spread_evenly_across_the_council(index: int, size: int, expected: float) -> None:
    assert spread(0.7, 0.4, index, size, low=0.0, high=2.0) == expected


def test_spread_temperatures_stay_in_range() -> None:
    assert spread(0.0, 1.0, 0, 3, low=0.0, high=2.0) == 0.0
    assert spread(1.9, 1.0, 2, 3, low=0.0, high=2.0) == 2.0


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@host:8000/v1", "http://host:8000/v1"),
        ("https://token@api.example.com/v1", "https://api.example.com/v1"),
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"),
    ],
)
def test_urls_in_messages_lose_their_credentials(url: str, shown: str) -> None:
    message = str(errors.unreachable("OpenAI-compatible", url, "ORCH_OPENAI_BASE_URL", "connection refused"))
    assert f"no OpenAI-compatible server answered at {shown} (connection refused)" in message
    with pytest.raises(ValueError, match="is not an http") as raised:
        check_base_url(url.replace("http", "ftp", 1), "openai")
    assert f"base_url {shown.replace('http', 'ftp', 1)!r}" in str(raised.value)
