"""Tenants: creation, lookup by name and by write key.

The registry lives in the store (``tenants`` table). Lookups by write key
happen on every ingest request, so they are cached in-process; a key that
is not cached costs one point query.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from api.security import hash_key, new_write_key
from sinks.store import Store

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$")


class TenantError(ValueError):
    pass


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    pii_salt: str
    capabilities: tuple[str, ...]


DEFAULT_CAPABILITIES = ("bulk_export", "pdf_export", "audit_export", "webhooks")


def _row_to_tenant(row: dict) -> Tenant:
    return Tenant(row["tenant_id"], row["name"], row["pii_salt"], tuple(row["capabilities"]))


class TenantRegistry:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_key_hash: dict[str, Tenant] = {}
        self._lock = threading.Lock()

    def create(
        self, name: str, before_insert: Callable[[Tenant], None] | None = None
    ) -> tuple[Tenant, str]:
        """Create a tenant; return it with its write key (shown once, never
        stored). ``before_insert`` (the audit row) runs first: if it raises,
        no tenant and no key exist."""
        if not _NAME.match(name):
            raise TenantError("tenant name: 1-63 characters, letters, digits, space, '_', '.', '-'")
        with self._lock:
            if self.by_name(name):
                raise TenantError(f"tenant {name!r} already exists")
            key = new_write_key()
            now = datetime.now(UTC)
            tenant = Tenant(
                tenant_id="t_" + uuid.uuid4().hex[:12],
                name=name,
                pii_salt=secrets.token_hex(32),
                capabilities=DEFAULT_CAPABILITIES,
            )
            if before_insert is not None:
                before_insert(tenant)
            self.store.insert(
                "tenants",
                [
                    {
                        "tenant_id": tenant.tenant_id,
                        "name": name,
                        "write_key_hash": hash_key(key),
                        "pii_salt": tenant.pii_salt,
                        "capabilities": list(tenant.capabilities),
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
        return tenant, key

    def by_name(self, name: str) -> Tenant | None:
        rows = self.store.query(
            "SELECT tenant_id, name, pii_salt, capabilities FROM tenants FINAL"
            " WHERE name = {name:String} LIMIT 1",
            {"name": name},
        )
        return _row_to_tenant(rows[0]) if rows else None

    def by_id(self, tenant_id: str) -> Tenant | None:
        rows = self.store.query(
            "SELECT tenant_id, name, pii_salt, capabilities FROM tenants FINAL"
            " WHERE tenant_id = {tid:String} LIMIT 1",
            {"tid": tenant_id},
        )
        return _row_to_tenant(rows[0]) if rows else None

    def by_write_key(self, key: str) -> Tenant | None:
        h = hash_key(key)
        cached = self._by_key_hash.get(h)
        if cached:
            return cached
        rows = self.store.query(
            "SELECT tenant_id, name, pii_salt, capabilities FROM tenants FINAL"
            " WHERE write_key_hash = {h:String} LIMIT 1",
            {"h": h},
        )
        if not rows:
            return None
        tenant = _row_to_tenant(rows[0])
        self._by_key_hash[h] = tenant
        return tenant

    def forget(self, tenant_id: str) -> None:
        """Drop cached lookups of a tenant whose row changed (capability flags)."""
        with self._lock:
            for h in [h for h, t in self._by_key_hash.items() if t.tenant_id == tenant_id]:
                del self._by_key_hash[h]

    def all(self) -> list[Tenant]:
        rows = self.store.query(
            "SELECT tenant_id, name, pii_salt, capabilities FROM tenants FINAL ORDER BY name"
        )
        return [_row_to_tenant(r) for r in rows]
