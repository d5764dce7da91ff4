"""What the backends share: settings, prompts, backoff randomness, a concurrency limit."""

from __future__ import annotations

import asyncio
import random
from typing import ClassVar, Generic, Protocol, TypeVar

from agents_contrib.prompting import PromptSettings
from agents_contrib.resilience import LoopLocal, Sleep


class LimitedSettings(Protocol):
    @property
    def max_concurrency(self) -> int: ...


SettingsT = TypeVar("SettingsT", bound=LimitedSettings)


class LimitedBackend(Generic[SettingsT]):
    """A backend with a concurrency limit shared by every agent it creates.

    ``sleep`` and ``rng`` drive the retry backoff; tests pass their own to observe it.
    """

    settings_type: ClassVar[type]
    """The backend's settings class, read from the environment when no settings are given."""

    def __init__(
        self,
        settings: SettingsT | None = None,
        *,
        prompts_dir: str | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings: SettingsT = settings if settings is not None else self.settings_type()
        self.prompts_dir = prompts_dir if prompts_dir is not None else PromptSettings().prompts_dir
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._limits: LoopLocal[asyncio.Semaphore] = LoopLocal(
            lambda: asyncio.Semaphore(self.settings.max_concurrency)
        )

    def limit(self) -> asyncio.Semaphore:
        """The semaphore of the running event loop: at most ``max_concurrency`` calls at once."""
        return self._limits.get()
