"""What the API process holds for its lifetime, built once at start-up."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from api.tenants import TenantRegistry
from ops.secrets import Secrets
from ops.settings import Settings
from sinks.store import Store


class KafkaProbe:
    """Cached broker reachability, so /health never blocks on Kafka for long."""

    def __init__(self, bootstrap: str, ttl_s: float = 5.0) -> None:
        self.bootstrap = bootstrap
        self.ttl_s = ttl_s
        self._at = 0.0
        self._ok = False
        self._lock = threading.Lock()

    def ok(self) -> bool:
        from ops.kafka_launcher import metadata_ok

        with self._lock:
            if time.monotonic() - self._at > self.ttl_s:
                self._ok = metadata_ok(self.bootstrap, 1, timeout=2.0)
                self._at = time.monotonic()
            return self._ok


@dataclass
class AppContext:
    settings: Settings
    store: Store
    secrets: Secrets
    kafka_bootstrap: str
    tenants: TenantRegistry = field(init=False)
    kafka: KafkaProbe = field(init=False)
    started_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.tenants = TenantRegistry(self.store)
        self.kafka = KafkaProbe(self.kafka_bootstrap)
