"""Live traffic first: imported history gives way to live events.

Both are applied by the same worker, per partition, on one event loop (a
learner's state lives on one partition, whichever topic an event came by).
A live record is applied whole; an imported record is applied one event at
a time, and before each event the import yields the loop, so a live record
that arrived meanwhile is applied before the next imported event. While
live records keep coming, the import also pauses briefly every few events,
so the live stream's backlog, not the import's, gets the worker's time.
"""

from __future__ import annotations

import asyncio
import time

LIVE_RECENT_S = 0.2  # live records seen this recently: the import paces itself
PAUSE_EVERY = 32  # imported events between pauses while live records come
PAUSE_S = 0.002


class LiveFirst:
    def __init__(self) -> None:
        self._live_at = float("-inf")
        self._since_pause = 0

    def live(self) -> None:
        """A live record was applied."""
        self._live_at = time.monotonic()

    async def give_way(self) -> None:
        """Before an imported event: whatever live work is ready goes first."""
        self._since_pause += 1
        if self._since_pause >= PAUSE_EVERY and time.monotonic() - self._live_at < LIVE_RECENT_S:
            self._since_pause = 0
            await asyncio.sleep(PAUSE_S)
        else:
            await asyncio.sleep(0)
