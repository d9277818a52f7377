"""Who may do what: the role's rights (token) AND the tenant's flags (store).

Tenant flags are read on every request, so switching one off takes effect at
once, whatever tokens are out. A tenant without ``bulk_export`` still gets
its on-screen reports; only exports are refused.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from api.audit.chain import audit
from api.security import Principal
from api.tenants import TenantRegistry
from sinks.store import Store

TENANT_FLAGS = ("bulk_export", "pdf_export", "audit_export", "webhooks")


# (report, format) -> (role capability, tenant flags)
def needs(report: str, fmt: str) -> tuple[str, tuple[str, ...]]:
    if report == "audit":
        return "audit_read", ("audit_export", "bulk_export")
    if fmt == "pdf":
        return "export_pdf", ("bulk_export", "pdf_export")
    return "export_csv", ("bulk_export",)


class CapabilityError(PermissionError):
    pass


def check_export(tenants: TenantRegistry, principal: Principal, report: str, fmt: str) -> None:
    role_cap, flags = needs(report, fmt)
    if role_cap not in principal.capabilities:
        raise CapabilityError(f"role {principal.role} lacks the {role_cap!r} capability")
    tenant = tenants.by_id(principal.tenant_id)
    have = set(tenant.capabilities) if tenant else set()
    missing = [f for f in flags if f not in have]
    if missing:
        raise CapabilityError(f"export disabled for this tenant: {', '.join(missing)} is off")


def tenant_flags(store: Store, tenant_id: str) -> frozenset[str]:
    """The tenant's flags as stored now (no cache: switching one off is immediate)."""
    rows = store.query(
        "SELECT capabilities FROM tenants FINAL WHERE tenant_id = {t:String}", {"t": tenant_id}
    )
    return frozenset(rows[0]["capabilities"]) if rows else frozenset()


def require_flag(store: Store, tenant_id: str, flag: str) -> None:
    if flag not in tenant_flags(store, tenant_id):
        raise CapabilityError(f"{flag} is off for this tenant")


def set_flags(
    store: Store,
    tenants: TenantRegistry,
    tenant_id: str,
    *,
    enable: list[str],
    disable: list[str],
    actor_id: str,
    actor_role: str,
) -> list[str]:
    bad = [f for f in [*enable, *disable] if f not in TENANT_FLAGS]
    if bad:
        raise ValueError(f"unknown flag(s) {', '.join(bad)}; one of {', '.join(TENANT_FLAGS)}")
    rows = store.query("SELECT * FROM tenants FINAL WHERE tenant_id = {t:String}", {"t": tenant_id})
    if not rows:
        raise LookupError(f"no tenant {tenant_id!r}")
    row = rows[0]
    before = list(row["capabilities"])
    after = sorted((set(before) | set(enable)) - set(disable))
    row["capabilities"] = after
    row["updated_at"] = datetime.now(UTC)
    time.sleep(0.002)  # updated_at (ms) is the version: never equal to the previous row's
    with audit(
        store,
        tenant_id=tenant_id,
        actor_id=actor_id,
        actor_role=actor_role,
        action="tenant.capabilities",
        resource=f"tenant:{tenant_id}",
        outcome="ok",
        detail={"before": before, "after": after},
    ):
        store.insert("tenants", [row])
        tenants.forget(tenant_id)
    return after
