"""Whether each council's model endpoint answers, probed at startup and then periodically.

A council can be ready (its backend is installed, its options valid) while nothing listens
at its endpoint; without a probe the first deliberation is what finds out. Backends may offer
an optional ``async probe_endpoint(options) -> Reachability`` (:class:`ProbingBackend`): a cheap request
that touches the endpoint without costing tokens (e.g. ``GET /v1/models``). Any answer, even
an error status, means the endpoint is reachable; no connection or no answer means it is not.
Councils whose backend cannot probe are ``unknown``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from orchestrator_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 10.0
"""Longest one probe may take; past it the endpoint counts as not answering."""


class EndpointState(StrEnum):
    UNKNOWN = "unknown"
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Reachability:
    """What a probe found: the endpoint's state and, when unreachable, why and what to change."""

    state: EndpointState = EndpointState.UNKNOWN
    detail: str = ""


@runtime_checkable
class ProbingBackend(Protocol):
    """A backend that can check that the endpoint a council's options name answers. Optional."""

    async def probe_endpoint(self, options: Mapping[str, Any]) -> Reachability:
        """Touch the endpoint cheaply (no tokens spent); never raise for a dead endpoint.

        ``options`` are one agent's options, as a council gives them to ``create``."""
        ...


async def probe_backend(
    backend: object, options: Mapping[str, Any], timeout_seconds: float = PROBE_TIMEOUT_SECONDS
) -> Reachability:
    """``backend.probe_endpoint(options)`` bounded in time; a plugin's broken probe reports,
    never raises."""
    probe = getattr(backend, "probe_endpoint", None)
    if not callable(probe):
        return Reachability()
    try:
        async with asyncio.timeout(timeout_seconds):
            found = await probe(options)
    except TimeoutError:
        return Reachability(EndpointState.UNREACHABLE, f"no answer to a probe within {timeout_seconds:g}s")
    except Exception as exc:
        return Reachability(EndpointState.UNKNOWN, f"the probe failed: {type(exc).__name__}: {exc}")
    return found if isinstance(found, Reachability) else Reachability()


class Prober:
    """Probes every council now and then every ``interval_seconds``; logs each change once."""

    def __init__(self, councils: Callable[[], Iterable[ProbedCouncil]], interval_seconds: float) -> None:
        self._councils = councils
        self.interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval_seconds > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def probe_all(self) -> None:
        councils = list(self._councils())
        found = await asyncio.gather(*(council.probe() for council in councils))
        for council, reachability in zip(councils, found, strict=True):
            previous = council.reachability
            council.reachability = reachability
            if reachability.state is not previous.state:
                _log_change(council.role, reachability)

    async def _loop(self) -> None:
        while True:
            await self.probe_all()
            await asyncio.sleep(self.interval_seconds)


class ProbedCouncil(Protocol):
    role: str
    reachability: Reachability

    async def probe(self) -> Reachability: ...


def _log_change(role: str, reachability: Reachability) -> None:
    if reachability.state is EndpointState.UNREACHABLE:
        log.warning("the %s council's endpoint is unreachable: %s", role, reachability.detail)
    elif reachability.state is EndpointState.REACHABLE:
        log.info("the %s council's endpoint is reachable%s", role,
                 f": {reachability.detail}" if reachability.detail else "")
