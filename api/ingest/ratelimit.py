"""Per-tenant token bucket on events per second."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, tenant_id: str, n: int) -> float:
        """Take n tokens; return 0 if allowed, else seconds until they would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(tenant_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if n > tokens:
                self._buckets[tenant_id] = (tokens, now)
                return max(0.001, (n - tokens) / self.rate)
            self._buckets[tenant_id] = (tokens - n, now)
            return 0.0
