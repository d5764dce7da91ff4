"""Fixtures shared by agents-contrib's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from llm_server import LLMServer, running_llm_server


@pytest.fixture
async def server() -> AsyncIterator[LLMServer]:
    async with running_llm_server() as running:
        yield running
