"""The loop watchdog: a thread that notices when the event loop stops answering.

Every call the service serves, health checks included, runs on one event loop; code that
runs on it without yielding (a plugin calling ``time.sleep``, or a CPU-bound parse) stalls
them all. The watchdog's thread posts a ping to the loop every ``interval`` seconds and
waits for the answer. When the loop is more than ``threshold`` seconds late
(``ORCH_LOOP_STALL_SECONDS``), it logs which plugin call was running on the loop (see
:func:`orchestrator_core.plugin_calls.plugin_call`) with the loop thread's stack, counts the
stall (GetStatus: ``loop_stalls``) and counts it against that plugin; it logs again when the
loop answers.

Every late answer also adds its lateness to the stalled time the watchdog keeps, attributed
to the task that was running when a stall was seen. Plugin-call budgets
(:class:`orchestrator_core.plugin_calls.Budget`) read it: a call's deadline moves by the
stalls other tasks caused, so one plugin blocking the loop does not time out another.

Overhead: one wake-up of the loop per ``interval`` (a callback and a self-pipe write).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
import weakref
from dataclasses import dataclass
from typing import Any

from orchestrator_core.plugin_calls import (
    PluginCall,
    PluginFailureCounters,
    plugin_call_of,
    set_stall_clock,
    unset_stall_clock,
)

log = logging.getLogger(__name__)

STALL_SETTING = "ORCH_LOOP_STALL_SECONDS"
MAX_INTERVAL_SECONDS = 0.1
"""The watchdog pings at least this often, so the stalled time it keeps is this precise."""
LATE_SECONDS = 0.005
"""A ping answered later than this adds its lateness to the stalled time."""


@dataclass
class _Ping:
    sent: float
    answered: threading.Event
    culprit: asyncio.Task[Any] | None = None
    stalled: bool = False


class LoopWatchdog:
    """Watches one event loop from a daemon thread; see the module's docstring."""

    def __init__(self, threshold: float, failures: PluginFailureCounters | None = None) -> None:
        if threshold <= 0:
            raise ValueError("the stall threshold must be above 0")
        self.threshold = threshold
        self.interval = min(MAX_INTERVAL_SECONDS, threshold / 2)
        self.failures = failures
        self._lock = threading.Lock()
        self._stalls = 0
        self._longest = 0.0
        self._stalled_total = 0.0
        self._caused: weakref.WeakKeyDictionary[asyncio.Task[Any], float] = weakref.WeakKeyDictionary()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    # -- what it saw (any thread) ------------------------------------------------------------

    @property
    def stalls(self) -> int:
        with self._lock:
            return self._stalls

    @property
    def longest_stall_seconds(self) -> float:
        with self._lock:
            return self._longest

    def stalled_seconds(self, excluding: asyncio.Task[Any] | None = None) -> float:
        """Seconds the loop answered late so far, without the stalls ``excluding`` caused."""
        with self._lock:
            caused = self._caused.get(excluding, 0.0) if excluding is not None else 0.0
            return self._stalled_total - caused

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching the running loop (call it on the loop's thread)."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        set_stall_clock(self._loop, self)
        self._thread = threading.Thread(target=self._watch, name="orchestrator loop watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; returns once the thread has ended (within one interval)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=max(1.0, 2 * self.interval))
        if self._loop is not None:
            unset_stall_clock(self._loop, self)

    def _watch(self) -> None:
        loop = self._loop
        assert loop is not None
        while not self._stop.is_set():
            ping = _Ping(time.monotonic(), threading.Event())
            try:
                loop.call_soon_threadsafe(self._answer, ping)
            except RuntimeError:  # the loop is closed
                return
            if not ping.answered.wait(self.threshold):
                self._stalled(ping)
                while not ping.answered.wait(self.interval):
                    if self._stop.is_set():
                        return
            self._stop.wait(self.interval)

    def _answer(self, ping: _Ping) -> None:
        """On the loop's thread: the ping came through; account for its lateness."""
        late = time.monotonic() - ping.sent
        with self._lock:
            if late > LATE_SECONDS:
                self._stalled_total += late
                if ping.culprit is not None:
                    self._caused[ping.culprit] = self._caused.get(ping.culprit, 0.0) + late
            if ping.stalled:
                self._longest = max(self._longest, late)
            ping.answered.set()
        if ping.stalled:
            log.warning("the event loop answered again after a stall of %.2fs", late)

    def _stalled(self, ping: _Ping) -> None:
        """On the watchdog's thread: the loop is ``threshold`` late; say what runs on it."""
        loop = self._loop
        culprit = asyncio.current_task(loop) if loop is not None else None
        call = plugin_call_of(culprit)
        with self._lock:
            if ping.answered.is_set():  # it answered just now: not a stall after all
                return
            ping.culprit = culprit
            ping.stalled = True
            self._stalls += 1
        if call is not None and self.failures is not None:
            self.failures.count(call, "loop_stalls")
        log.warning(
            "the event loop has not answered for %.2fs (more than %s=%gs): %s runs on it without "
            "yielding; every call, health checks included, waits meanwhile. Its stack:\n%s",
            time.monotonic() - ping.sent, STALL_SETTING, self.threshold, _running(call, culprit),
            self._loop_stack(),
        )

    def _loop_stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        return "".join(traceback.format_stack(frame)) if frame is not None else "(unavailable)"


def _running(call: PluginCall | None, task: asyncio.Task[Any] | None) -> str:
    if call is not None:
        return f"{call}, a call of the plugin's {call.plugin},"
    if task is not None:
        return f"task {task.get_name()} (no plugin call)"
    return "code outside any task (a callback)"
