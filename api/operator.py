"""Operator actions shared by the admin routes and the CLI's local mode, so
`skillstream tenant create` behaves the same with or without a running API."""

from __future__ import annotations

from api.reports.org import Link, OrgRegistry
from api.security import ROLES, issue_token
from api.tenants import Tenant, TenantError, TenantRegistry
from ops.secrets import Secrets
from sinks.store import Store


class NotFound(LookupError):
    pass


def create_tenant(tenants: TenantRegistry, name: str) -> tuple[Tenant, str]:
    return tenants.create(name)


def mint_token(
    tenants: TenantRegistry,
    secrets: Secrets,
    *,
    tenant_name: str,
    role: str,
    user_id: str | None,
    ttl_s: int,
) -> str:
    if role not in ROLES:
        raise TenantError(f"role must be one of {', '.join(ROLES)}")
    tenant = tenants.by_name(tenant_name)
    if tenant is None:
        raise NotFound(f"no tenant named {tenant_name!r}")
    return issue_token(
        secrets.token_secret,
        tenant_id=tenant.tenant_id,
        tenant_name=tenant.name,
        role=role,
        user_id=user_id,
        ttl_s=ttl_s,
    )


# --- org data ------------------------------------------------------------------------
def _tenant_id(tenants: TenantRegistry, name: str) -> str:
    tenant = tenants.by_name(name)
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}")
    return tenant.tenant_id


def org_change(
    tenants: TenantRegistry,
    store: Store,
    tenant_name: str,
    relation: str,
    subject_id: str,
    object_id: str,
    *,
    unlink: bool = False,
) -> dict:
    """Link (or unlink) as the local operator; audited as actor 'operator'."""
    link = Link(_tenant_id(tenants, tenant_name), relation, subject_id, object_id)
    org = OrgRegistry(store)
    (org.unlink if unlink else org.link)(link, actor="operator", actor_role="operator")
    return {**link.__dict__, "deleted": unlink}


def org_bulk(
    tenants: TenantRegistry, store: Store, tenant_name: str, links: list[tuple[str, str, str]]
) -> int:
    tid = _tenant_id(tenants, tenant_name)
    OrgRegistry(store).link_many(
        [Link(tid, r, s, o) for r, s, o in links], actor="operator", actor_role="operator"
    )
    return len(links)


def org_list(
    tenants: TenantRegistry, store: Store, tenant_name: str, relation: str | None
) -> list[dict]:
    tid = _tenant_id(tenants, tenant_name)
    return [lk.__dict__ for lk in OrgRegistry(store).links(tid, relation)]
