"""Scheduled jobs: the export sweep (lapsed links → objects deleted) every
``EXPORT_SWEEP_S``, the retention purge every ``PURGE_INTERVAL_S`` (default
daily), the erasure second pass, and, where job runners share the work, the
claim of pending exports. Each job first runs one interval after start, so
a restart never triggers a purge by itself. A job with a ``share`` runs
only while this process holds that lease (api/leases.py); without leases
(the embedded store: one process) every job runs here."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.threads import BackgroundThread

if TYPE_CHECKING:
    from api.leases import Leases

log = logging.getLogger("skillstream.jobs")


@dataclass
class Periodic:
    name: str
    every_s: float
    fn: Callable[[], object]
    share: int | None = None  # the lease it needs; None: runs wherever it is scheduled
    next_at: float = field(default=0.0)


class Scheduler:
    def __init__(self, jobs: list[Periodic], leases: Leases | None = None) -> None:
        self.jobs = jobs
        self.leases = leases
        self._thread = BackgroundThread("scheduler", self._loop)

    def start(self) -> None:
        now = time.monotonic()
        for j in self.jobs:
            j.next_at = now + j.every_s
        self._thread.start()

    def _loop(self) -> None:
        while not self._thread.stopping.is_set():
            now = time.monotonic()
            for j in self.jobs:
                if now >= j.next_at and self._may_run(j):
                    try:
                        log.info("%s: %s", j.name, j.fn())
                    except Exception:  # noqa: BLE001 (a failed run is retried next time)
                        log.exception("scheduled job %s failed", j.name)
                    j.next_at = time.monotonic() + j.every_s
            wake = min(j.next_at for j in self.jobs) - time.monotonic()
            self._thread.stopping.wait(max(0.05, min(wake, 5.0)))

    def _may_run(self, job: Periodic) -> bool:
        if self.leases is None or job.share is None or self.leases.holds(job.share):
            return True
        job.next_at = time.monotonic() + job.every_s  # another runner's turn
        return False

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._thread.stop(10)
