"""Report results kept until the data under them changes.

A dashboard polls every 5 s per viewer; the sink writes a round every
``SINK_BATCH_MS`` at most and none while nothing arrives. A result is keyed
by the report, the scope (org data included: a changed link is a new
scope), the parameters, the UTC date (reports are relative to today) and
the sink's round count, so between two rounds every poll with the same key
is answered from memory without the store lock the sink needs. Entries also
expire after ``max_age_s``: writes this process does not count (a purge, an
erasure, another API process on a ClickHouse server) show within that time.
Concurrent misses on one key compute once (the others wait for it).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

LOOKUPS = Counter("skillstream_report_cache_total", "Report cache lookups", ["report", "outcome"])


class ReportCache:
    def __init__(
        self, generation: Callable[[], int], *, max_entries: int = 512, max_age_s: float = 30.0
    ) -> None:
        self._generation = generation
        self._max_entries = max_entries
        self._max_age_s = max_age_s
        self._entries: OrderedDict[Hashable, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def key(self, report: str, scope: Hashable, **params: Any) -> Hashable:
        today = datetime.now(UTC).date()
        return (report, scope, tuple(sorted(params.items())), today, self._generation())

    def get(self, key: Hashable, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The cached result for ``key``, else ``compute()`` stored under it."""
        report = str(key[0]) if isinstance(key, tuple) else "?"
        hit = self._fresh(key)
        if hit is not None:
            LOOKUPS.labels(report, "hit").inc()
            return dict(hit)
        with self._lock:
            flight = self._computing.setdefault(key, threading.Lock())
        with flight:
            hit = self._fresh(key)  # computed by the call we waited for
            if hit is None:
                LOOKUPS.labels(report, "miss").inc()
                hit = compute()
                self._put(key, hit)
            else:
                LOOKUPS.labels(report, "hit").inc()
        with self._lock:
            self._computing.pop(key, None)
        return dict(hit)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _fresh(self, key: Hashable) -> dict[str, Any] | None:
        with self._lock:
            got = self._entries.get(key)
            if got is None or time.monotonic() - got[0] > self._max_age_s:
                return None
            self._entries.move_to_end(key)
            return got[1]

    def _put(self, key: Hashable, value: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
