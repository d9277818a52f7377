"""Scheduled jobs of the API process (it owns the store): the export sweep
(lapsed links → objects deleted) every ``EXPORT_SWEEP_S`` and the retention
purge every ``PURGE_INTERVAL_S`` (default daily). Each job first runs one
interval after start, so a restart never triggers a purge by itself."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("skillstream.jobs")


@dataclass
class Periodic:
    name: str
    every_s: float
    fn: Callable[[], object]
    next_at: float = field(default=0.0)


class Scheduler:
    def __init__(self, jobs: list[Periodic]) -> None:
        self.jobs = jobs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)

    def start(self) -> None:
        now = time.monotonic()
        for j in self.jobs:
            j.next_at = now + j.every_s
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for j in self.jobs:
                if now >= j.next_at:
                    try:
                        log.info("%s: %s", j.name, j.fn())
                    except Exception:  # noqa: BLE001 (a failed run is retried next time)
                        log.exception("scheduled job %s failed", j.name)
                    j.next_at = time.monotonic() + j.every_s
            wake = min(j.next_at for j in self.jobs) - time.monotonic()
            self._stop.wait(max(0.05, min(wake, 5.0)))

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
