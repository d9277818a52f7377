"""Operator actions shared by the admin routes and the CLI's local mode, so
`skillstream tenant create` behaves the same with or without a running API."""

from __future__ import annotations

from api.security import ROLES, issue_token
from api.tenants import Tenant, TenantError, TenantRegistry
from ops.secrets import Secrets


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
