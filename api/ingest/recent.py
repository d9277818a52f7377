"""Ids this API process accepted recently, to answer retries with `duplicates`.

Bounded by count and age. This is a courtesy to clients; the stream's dedupe
table is the authority (a restarted API forgets, the stream does not).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class RecentIds:
    def __init__(self, max_items: int = 1_000_000, ttl_s: float = 24 * 3600) -> None:
        self.max_items = max_items
        self.ttl_s = ttl_s
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def contains(self, tenant_id: str, client_event_id: str) -> bool:
        key = (tenant_id, client_event_id)
        with self._lock:
            at = self._seen.get(key)
            if at is None:
                return False
            if time.monotonic() - at > self.ttl_s:
                del self._seen[key]
                return False
            return True

    def add_many(self, tenant_id: str, ids: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for cid in ids:
                self._seen[(tenant_id, cid)] = now
                self._seen.move_to_end((tenant_id, cid))
            while len(self._seen) > self.max_items:
                self._seen.popitem(last=False)
