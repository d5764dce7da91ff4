"""The plugin conformance kit: a plugin's agent backends and checks, held to the contract and
run through the real engine.

A plugin author subclasses one class per backend or check in a test module::

    from orchestrator_core.testing import AgentBackendConformance, CheckConformance

    class TestMyBackend(AgentBackendConformance):
        backend = MyBackend()
        options = {"model": "small"}        # options a council would give it

    class TestMyCheck(CheckConformance):
        check = MyCheck()

and pytest runs every conformance test on it: the contract (types, signatures, async
methods, ``create()`` rejecting an unknown option with ValueError), replies and results of
the right type and range, hostile input (a 1 MB task, control characters, unicode, markup),
cancellation and timeouts (a cancelled call must end, and end cancelled), concurrent use,
an event loop never blocked, and deliberations through an :class:`Orchestrator` with a real
council. The tests need no pytest-asyncio: each runs its own event loop.

Each test is a ``verify_*`` coroutine function of this module, usable on its own; a
violation raises :class:`ConformanceError` (an AssertionError) whose message names the
plugin object, what it did and what the contract asks instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar

from orchestrator_core.conformance_agents import (
    verify_agent_replies,
    verify_backend_cancellation,
    verify_backend_concurrency,
    verify_backend_contract,
    verify_backend_hostile_inputs,
    verify_backend_in_engine,
    verify_backend_rejects_unknown_options,
)
from orchestrator_core.conformance_checks import (
    verify_check_cancellation,
    verify_check_concurrency,
    verify_check_contract,
    verify_check_hostile_inputs,
    verify_check_in_engine,
    verify_check_result,
)
from orchestrator_core.conformance_support import (
    DEFAULT_LIMITS,
    HOSTILE_TEXTS,
    UNKNOWN_OPTION,
    ConformanceError,
    Limits,
)
from orchestrator_core.hookspecs import (
    AgentBackend,
    Check,
)

__all__ = [
    "HOSTILE_TEXTS",
    "UNKNOWN_OPTION",
    "AgentBackendConformance",
    "CheckConformance",
    "ConformanceError",
    "Limits",
    "verify_agent_replies",
    "verify_backend_cancellation",
    "verify_backend_concurrency",
    "verify_backend_contract",
    "verify_backend_hostile_inputs",
    "verify_backend_in_engine",
    "verify_backend_rejects_unknown_options",
    "verify_check_cancellation",
    "verify_check_concurrency",
    "verify_check_contract",
    "verify_check_hostile_inputs",
    "verify_check_in_engine",
    "verify_check_result",
]


# -- pytest classes ------------------------------------------------------------------------


def _run(coroutine: Awaitable[None]) -> None:
    async def main() -> None:
        await coroutine

    asyncio.run(main())


class AgentBackendConformance:
    """Conformance tests of one agent backend; subclass it as ``Test...`` and set ``backend``.

    ``options`` are what a council would pass (``ORCH_COUNCILS__<ROLE>__OPTIONS``); override
    :meth:`make_backend` to build a fresh backend per test. ``limits`` bounds the waits.
    """

    backend: ClassVar[AgentBackend | None] = None
    options: ClassVar[Mapping[str, Any]] = {}
    limits: ClassVar[Limits] = DEFAULT_LIMITS

    def make_backend(self) -> AgentBackend:
        if self.backend is None:
            raise ConformanceError(f"{type(self).__name__} sets no `backend` (or override make_backend())")
        return self.backend

    def test_backend_contract(self) -> None:
        _run(verify_backend_contract(self.make_backend(), self.options))

    def test_create_rejects_unknown_options(self) -> None:
        _run(verify_backend_rejects_unknown_options(self.make_backend(), self.options))

    def test_agent_replies(self) -> None:
        _run(verify_agent_replies(self.make_backend(), self.options, self.limits))

    def test_hostile_inputs(self) -> None:
        _run(verify_backend_hostile_inputs(self.make_backend(), self.options, self.limits))

    def test_cancellation_and_timeouts(self) -> None:
        _run(verify_backend_cancellation(self.make_backend(), self.options, self.limits))

    def test_deliberates_through_the_engine(self) -> None:
        _run(verify_backend_in_engine(self.make_backend(), self.options, self.limits))

    def test_concurrent_deliberations(self) -> None:
        _run(verify_backend_concurrency(self.make_backend(), self.options, self.limits))


class CheckConformance:
    """Conformance tests of one check; subclass it as ``Test...`` and set ``check`` (or
    override :meth:`make_check`)."""

    check: ClassVar[Check | None] = None
    limits: ClassVar[Limits] = DEFAULT_LIMITS

    def make_check(self) -> Check:
        if self.check is None:
            raise ConformanceError(f"{type(self).__name__} sets no `check` (or override make_check())")
        return self.check

    def test_check_contract(self) -> None:
        _run(verify_check_contract(self.make_check()))

    def test_check_result(self) -> None:
        _run(verify_check_result(self.make_check(), self.limits))

    def test_hostile_inputs(self) -> None:
        _run(verify_check_hostile_inputs(self.make_check(), self.limits))

    def test_concurrent_runs(self) -> None:
        _run(verify_check_concurrency(self.make_check(), self.limits))

    def test_cancellation_and_timeouts(self) -> None:
        _run(verify_check_cancellation(self.make_check(), self.limits))

    def test_checks_a_deliberation_through_the_engine(self) -> None:
        _run(verify_check_in_engine(self.make_check(), self.limits))
