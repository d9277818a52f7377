"""Tenants: creation, lookup by name and by write key.

The registry lives in the store (``tenants`` table). Lookups by write key
happen on every ingest request, so they are cached in-process; a key that
is not cached costs one point query.

Each tenant's PII salt (the HMAC key of its hashed identifiers) is stored
sealed with SKILLSTREAM_PII_KEYS (api/sealing.py), a key that is never in
ClickHouse: whoever reads the table, an analyst included, cannot recompute
or reverse a hash. It is plain only in this process's memory.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from api.sealing import Sealer, reseal_rows
from api.security import hash_key, new_write_key
from sinks.store import Store

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$")


class TenantError(ValueError):
    pass


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    sealed_pii_salt: str = field(repr=False)  # as stored: `fernet:…`
    capabilities: tuple[str, ...]
    salts: Sealer | None = field(default=None, repr=False, compare=False)

    @cached_property
    def pii_salt(self) -> str:
        """Opened when first used (ingest), so listing tenants never needs the key."""
        if self.salts is None:
            raise TenantError("no PII key to open this tenant's salt")
        return self.salts.open(self.sealed_pii_salt)


DEFAULT_CAPABILITIES = ("bulk_export", "pdf_export", "audit_export", "webhooks")


class TenantRegistry:
    """``salts`` seals and opens the PII salts (the PII key's Sealer)."""

    def __init__(self, store: Store, salts: Sealer) -> None:
        self.store = store
        self.salts = salts
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
                sealed_pii_salt=self.salts.seal(secrets.token_hex(32)),
                capabilities=DEFAULT_CAPABILITIES,
                salts=self.salts,
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
                        "pii_salt": tenant.sealed_pii_salt,
                        "capabilities": list(tenant.capabilities),
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
        return tenant, key

    def _row_to_tenant(self, row: dict) -> Tenant:
        caps = tuple(row["capabilities"])
        return Tenant(row["tenant_id"], row["name"], row["pii_salt"], caps, self.salts)

    def by_name(self, name: str) -> Tenant | None:
        rows = self.store.query(
            "SELECT tenant_id, name, pii_salt, capabilities FROM tenants FINAL"
            " WHERE name = {name:String} LIMIT 1",
            {"name": name},
        )
        return self._row_to_tenant(rows[0]) if rows else None

    def by_id(self, tenant_id: str) -> Tenant | None:
        rows = self.store.query(
            "SELECT tenant_id, name, pii_salt, capabilities FROM tenants FINAL"
            " WHERE tenant_id = {tid:String} LIMIT 1",
            {"tid": tenant_id},
        )
        return self._row_to_tenant(rows[0]) if rows else None

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
        tenant = self._row_to_tenant(rows[0])
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
        return [self._row_to_tenant(r) for r in rows]


def reseal_salts(store: Store, salts: Sealer) -> int:
    """Seal PII salts left in plain text by an older version, and move salts
    sealed under an older key to the newest (run at API start; idempotent);
    then merge the table so the old versions are gone, not merely superseded."""
    rows = store.query("SELECT * FROM tenants FINAL")
    time.sleep(0.002)  # updated_at (ms) is the version: newer than any row's

    def bump(row: dict) -> None:
        row["updated_at"] = datetime.now(UTC)

    changed = reseal_rows(rows, "pii_salt", salts, bump)
    if changed:
        store.insert("tenants", changed)
        store.command("OPTIMIZE TABLE tenants FINAL")
    return len(changed)
