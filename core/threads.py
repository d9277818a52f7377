"""A named daemon thread that runs a loop until asked to stop: the shape
of every background worker of a process (the sink, the scheduler, the
leases, the lag monitor, the export worker, the producer's poller).

The loop is the owner's own function; it checks ``stopping`` (or waits on
it, so a stop wakes it at once) and returns when it is set. What a loop
does with its exceptions stays the owner's choice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackgroundThread:
    def __init__(self, name: str, loop: Callable[[], object]) -> None:
        self.name = name
        self.stopping = threading.Event()
        self._loop = loop
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the loop in a fresh thread unless one is running (a thread
        that ended is replaced, so an owner can restart it on demand)."""
        if self.is_alive():
            return
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float) -> None:
        """Ask the loop to stop and wait for it, at most ``timeout`` seconds."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
