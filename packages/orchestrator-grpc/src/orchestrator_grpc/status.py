"""Domain errors -> gRPC status codes, in one place.

Every servicer method is wrapped by :func:`unary_errors` or :func:`stream_errors`. An error
the core raises on purpose reaches the client as the status code that says what happened,
with the error's own message. Anything else is a bug: it is logged here with its
traceback, and the client gets INTERNAL with a short message and a reference to the log
line, never the traceback.

A deliberation that lost its quorum to a bug in a backend's code (an agent raised something
other than an AgentError, or returned no AgentReply: see :mod:`orchestrator_core.errors`) is
INTERNAL too, not the retryable UNAVAILABLE, since retrying cannot help; its message names
the backend and says to see the service log, where the bug is logged with its traceback.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

import grpc

from orchestrator_core.errors import (
    AgentError,
    AlreadyFinished,
    AtCapacity,
    BackendRejected,
    BackendUnavailable,
    DeadlineExceeded,
    InvalidRequest,
    NoCouncil,
    NotFound,
    NoViableProposal,
    QuorumLost,
    RecordsUnavailable,
)
from orchestrator_grpc.jetstream.errors import QueueUnavailable
from orchestrator_grpc.queued import DeliberationCancelled, WorkerLost

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
_Context = grpc.aio.ServicerContext[Any, Any]

# Most specific first: BackendUnavailable and BackendRejected are AgentErrors.
_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (NoCouncil, grpc.StatusCode.FAILED_PRECONDITION),
    (NoViableProposal, grpc.StatusCode.FAILED_PRECONDITION),
    (AlreadyFinished, grpc.StatusCode.FAILED_PRECONDITION),
    (DeliberationCancelled, grpc.StatusCode.CANCELLED),
    (WorkerLost, grpc.StatusCode.UNAVAILABLE),
    (AtCapacity, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (BackendUnavailable, grpc.StatusCode.UNAVAILABLE),
    (BackendRejected, grpc.StatusCode.FAILED_PRECONDITION),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (AgentError, grpc.StatusCode.UNAVAILABLE),
    (RecordsUnavailable, grpc.StatusCode.UNAVAILABLE),
    (QueueUnavailable, grpc.StatusCode.UNAVAILABLE),
)
DELIBERATION_ID_METADATA = "orchestrator-deliberation-id"
"""Trailing metadata of a failed Orchestrate whose record keeps the ranking (no viable
proposal): the id to pass to GetDeliberation."""
INTERNAL_MESSAGE = "internal error in the orchestrator service; see its log (ref {ref})"
CANCELLED_MESSAGE = "the deliberation was cancelled"


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status code and message a domain error maps to; None for an unexpected error."""
    if isinstance(error, QuorumLost):
        if error.plugin_bug:
            return grpc.StatusCode.INTERNAL, str(error)
        if error.cause is not None:
            cause_status = status_for(error.cause)
            code = cause_status[0] if cause_status else grpc.StatusCode.UNAVAILABLE
            return code, str(error)
        return grpc.StatusCode.UNAVAILABLE, str(error)
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED, CANCELLED_MESSAGE
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code, str(error) or kind.__name__
    return None


async def abort_for(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> None:
    """End the call with the status ``error`` maps to (INTERNAL, logged, for a bug)."""
    mapped = status_for(error)
    if mapped is None:
        ref = uuid.uuid4().hex[:12]
        log.error("unexpected error (ref %s)", ref, exc_info=error)
        mapped = grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE.format(ref=ref)
    if isinstance(error, NoViableProposal) and error.outcome is not None:
        context.set_trailing_metadata(((DELIBERATION_ID_METADATA, error.outcome.deliberation_id),))
    await context.abort(*mapped)


def _being_cancelled() -> bool:
    """True when this handler's own task is being cancelled (the client went away): then
    there is no one to send a status to, and the cancellation must propagate."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _answer(context: _Context, error: BaseException) -> None:
    """End the call with the status ``error`` maps to; the handler's own cancellation (the
    client went away: no one to answer) propagates instead."""
    if isinstance(error, asyncio.CancelledError) and _being_cancelled():
        raise error
    await abort_for(context, error)


def unary_errors(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Wraps a unary servicer method (``self, request, context``) with the mapping: an error
    raised in it ends the call with the status it maps to. An abort already under way keeps
    its own status; the handler's own cancellation propagates.

    Plain ``except`` clauses rather than an async context manager: the wrapper runs around
    every call, and a call that returns then costs the ``try`` alone."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except grpc.aio.AbortError:
            raise
        except (asyncio.CancelledError, Exception) as error:
            await _answer(cast(_Context, args[-1]), error)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    return wrapper


def stream_errors(method: Callable[P, AsyncIterator[R]]) -> Callable[P, AsyncIterator[R]]:
    """Wraps a server-streaming servicer method (an async generator) with the same mapping."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
        try:
            async for item in method(*args, **kwargs):
                yield item
        except grpc.aio.AbortError:
            raise
        except (asyncio.CancelledError, Exception) as error:
            await _answer(cast(_Context, args[-1]), error)

    return wrapper
