"""What the model backends' tests share: the waits between attempts, recorded."""

from __future__ import annotations

import asyncio


class Sleeps:
    """The waits between attempts, recorded rather than slept (tests assert bounds, not clocks)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)
