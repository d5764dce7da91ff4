"""Budget, the bound of every agent call and check: a call past its budget ends with
TimeoutError, a cancellation from anyone else stays a cancellation, and a call within it is
untouched."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator_core.plugin_calls import Budget


async def test_a_call_past_its_budget_ends_with_timeout_error() -> None:
    budget = Budget(0.01)
    async def hanging() -> None:
        async with budget:
            await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        await hanging()
    assert budget.expired
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_a_call_within_its_budget_returns_its_result() -> None:
    budget = Budget(5)
    async with budget:
        await asyncio.sleep(0)
        result = "done"
    assert result == "done"
    assert not budget.expired


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    entered = asyncio.Event()
    budget = Budget(5)

    async def call() -> None:
        async with budget:
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(call())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not budget.expired


async def test_a_cancellation_from_outside_after_the_budget_ran_out_is_not_swallowed() -> None:
    budget = Budget(0.01)

    async def call() -> None:
        async with budget:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:  # the budget's cancellation: now another comes
                asyncio.current_task().cancel()  # type: ignore[union-attr]
                raise

    task = asyncio.create_task(call())
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_strict_budget_rejects_a_call_that_returned_late_without_yielding() -> None:
    budget = Budget(0.01, strict=True)

    async def late_without_yielding() -> None:
        async with budget:
            deadline = asyncio.get_running_loop().time() + 0.03
            while asyncio.get_running_loop().time() < deadline:  # holds the loop: nothing can cancel it
                pass

    with pytest.raises(TimeoutError):
        await late_without_yielding()
    assert budget.expired
