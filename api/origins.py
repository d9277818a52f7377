"""Browser origins allowed per tenant: the CORS allow-list of the ingest endpoints.

Read on every browser request (preflights included), so the whole table is
cached in-process for ``ttl_s``; a change made through this process clears the
cache at once, and other API processes (a ClickHouse server, several APIs) see
it within ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from api.audit.chain import audit
from sinks.store import Store

DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginError(ValueError):
    pass


def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` as browsers send it in ``Origin``; anything else is refused."""
    raw = value.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise OriginError(f"{value!r}: not a URL ({exc})") from exc
    if parts.scheme not in DEFAULT_PORTS:
        raise OriginError(f"{value!r}: an origin is http:// or https:// followed by a host")
    if not parts.hostname or parts.username or parts.password:
        raise OriginError(f"{value!r}: an origin needs a host and no user or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise OriginError(f"{value!r}: an origin has no path, query or fragment")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}:{port}"
    return f"{parts.scheme}://{host}"


class OriginRegistry:
    def __init__(self, store: Store, ttl_s: float = 10.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._by_tenant: dict[str, frozenset[str]] = {}
        self._all: frozenset[str] = frozenset()

    def _load(self) -> None:
        rows = self.store.query(
            "SELECT tenant_id, origin FROM tenant_origins FINAL WHERE removed = 0"
        )
        by_tenant: dict[str, set[str]] = {}
        for r in rows:
            by_tenant.setdefault(r["tenant_id"], set()).add(r["origin"])
        self._by_tenant = {t: frozenset(o) for t, o in by_tenant.items()}
        self._all = frozenset(o for os_ in by_tenant.values() for o in os_)
        self._at = time.monotonic()

    def _fresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._at > self.ttl_s:
                self._load()

    def for_tenant(self, tenant_id: str) -> frozenset[str]:
        self._fresh()
        return self._by_tenant.get(tenant_id, frozenset())

    def known(self, origin: str) -> bool:
        """Allowed for some tenant: what a preflight (which carries no key) can check."""
        self._fresh()
        return origin in self._all

    def forget(self) -> None:
        with self._lock:
            self._at = float("-inf")

    def change(
        self,
        tenant_id: str,
        *,
        add: list[str],
        remove: list[str],
        actor_id: str,
        actor_role: str,
    ) -> list[str]:
        """Add and remove origins of one tenant (audited); return the origins now allowed."""
        to_add = [normalise_origin(o) for o in add]
        to_remove = [normalise_origin(o) for o in remove]
        both = set(to_add) & set(to_remove)
        if both:
            raise OriginError(f"both added and removed: {', '.join(sorted(both))}")
        with self._lock:
            self._load()
            before = sorted(self._by_tenant.get(tenant_id, frozenset()))
            after = sorted((set(before) | set(to_add)) - set(to_remove))
            now = datetime.now(UTC)
            rows = [
                {"tenant_id": tenant_id, "origin": o, "removed": 0, "version": now} for o in to_add
            ] + [
                {"tenant_id": tenant_id, "origin": o, "removed": 1, "version": now}
                for o in to_remove
            ]
            with audit(
                self.store,
                tenant_id=tenant_id,
                actor_id=actor_id,
                actor_role=actor_role,
                action="tenant.origins",
                resource=f"tenant:{tenant_id}",
                outcome="ok",
                detail={"before": before, "after": after},
            ):
                if rows:
                    self.store.insert("tenant_origins", rows)
            self._load()
            return sorted(self._by_tenant.get(tenant_id, frozenset()))
