"""Operator actions shared by the admin routes and the CLI's local mode, so
`skillstream tenant create` behaves the same with or without a running API."""

from __future__ import annotations

from api.audit.chain import audit
from api.origins import OriginRegistry
from api.reports.org import Link, OrgRegistry
from api.security import ROLES, issue_token
from api.tenants import Tenant, TenantError, TenantRegistry
from core.secrets import Secrets
from core.settings import Settings
from sinks.store import Store


class NotFound(LookupError):
    pass


def create_tenant(tenants: TenantRegistry, name: str) -> tuple[Tenant, str]:
    def audited(tenant: Tenant) -> None:
        audit(
            tenants.store,
            tenant_id=tenant.tenant_id,
            actor_id="operator",
            actor_role="operator",
            action="write_key.issued",
            resource=f"tenant:{tenant.tenant_id}",
            outcome="ok",
            detail={"name": name},
        )

    return tenants.create(name, before_insert=audited)


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
    token = issue_token(
        secrets.token_secret,
        tenant_id=tenant.tenant_id,
        tenant_name=tenant.name,
        role=role,
        user_id=user_id,
        ttl_s=ttl_s,
    )
    audit(
        tenants.store,
        tenant_id=tenant.tenant_id,
        actor_id="operator",
        actor_role="operator",
        action="token.issued",
        resource=f"user:{user_id or ''}",
        outcome="ok",
        detail={"role": role, "ttl_s": ttl_s},
    )
    return token


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


# --- governance (issue 7): the CLI's audit verify, purge, legal holds, flags ---------
def audit_verify(tenants: TenantRegistry, store: Store, tenant_name: str | None) -> list[dict]:
    from api.audit.chain import verify

    tid = _tenant_id(tenants, tenant_name) if tenant_name else None
    return [v.as_dict() for v in verify(store, tid)]


def purge(
    tenants: TenantRegistry, store: Store, settings, objects, tenant_name: str | None
) -> list[dict]:
    from api.retention.purge import purge_all

    tid = _tenant_id(tenants, tenant_name) if tenant_name else None
    reports = purge_all(store, settings, objects, tenant_id=tid, actor_id="operator")
    return [r.__dict__ for r in reports]


def hold_add(
    tenants: TenantRegistry,
    store: Store,
    tenant_name: str,
    kind: str,
    reason: str,
    user_id: str | None,
    from_ts,
    to_ts,
) -> dict:
    from api.retention.holds import place_hold

    h = place_hold(
        store,
        tenant_id=_tenant_id(tenants, tenant_name),
        kind=kind,
        user_id=user_id,
        from_ts=from_ts,
        to_ts=to_ts,
        reason=reason,
        actor_id="operator",
        actor_role="operator",
    )
    return h.as_dict()


def hold_list(tenants: TenantRegistry, store: Store, tenant_name: str) -> list[dict]:
    from api.retention.holds import list_holds

    return [h.as_dict() for h in list_holds(store, _tenant_id(tenants, tenant_name))]


def hold_release(tenants: TenantRegistry, store: Store, tenant_name: str, hold_id: str) -> dict:
    from api.retention.holds import release_hold

    h = release_hold(
        store,
        tenant_id=_tenant_id(tenants, tenant_name),
        hold_id=hold_id,
        actor_id="operator",
        actor_role="operator",
    )
    return h.as_dict()


def set_capabilities(
    tenants: TenantRegistry,
    store: Store,
    tenant_name: str,
    enable: list[str],
    disable: list[str],
) -> dict:
    from api.capabilities import set_flags

    tid = _tenant_id(tenants, tenant_name)
    flags = set_flags(
        store,
        tenants,
        tid,
        enable=enable,
        disable=disable,
        actor_id="operator",
        actor_role="operator",
    )
    return {"tenant": tenant_name, "flags": flags}


def set_origins(
    tenants: TenantRegistry,
    origins: OriginRegistry,
    tenant_name: str,
    add: list[str],
    remove: list[str],
) -> dict:
    """Browser origins allowed to send the tenant's events (CORS); audited."""
    now = origins.change(
        _tenant_id(tenants, tenant_name),
        add=add,
        remove=remove,
        actor_id="operator",
        actor_role="operator",
    )
    return {"tenant": tenant_name, "origins": now}


# --- analysts' SQL -----------------------------------------------------------------
def sql(
    tenants: TenantRegistry, settings: Settings, query: str, fmt: str, tenant_name: str | None
) -> bytes:
    """An analyst's query for the operator: every tenant, or one (row-filtered
    as a tenant's analyst is). Raises ``analyst.SqlRefused`` or ``StoreError``."""
    from api import analyst

    tenant_id = _tenant_id(tenants, tenant_name) if tenant_name else None
    return analyst.run(tenants.store, query, tenant_id=tenant_id, fmt=fmt,
                       max_rows=settings.sql_max_rows,
                       max_seconds=settings.sql_max_seconds).body  # fmt: skip


def readiness_term(
    tenants: TenantRegistry, settings: Settings, tenant_name: str, term: str | None
) -> dict:
    """The tenant's readiness-delta term; ``term`` sets it first (audited)."""
    from api.reports import terms

    tid = _tenant_id(tenants, tenant_name)
    if term is not None:
        terms.set_term(tenants.store, tid, term, actor_id="operator", actor_role="operator")
    return {"tenant": tenant_name,
            "term": terms.tenant_term(tenants.store, tid, settings.readiness_term)}  # fmt: skip
