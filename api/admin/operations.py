"""Every admin operation, once: its request, what it does as the local
operator (audited as actor 'operator'), and its HTTP door. ``OPS`` lists
them for the routes; the CLI names them by their constants."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.admin.op import INVALID, MISSING, Env, NotFound, Op
from api.analyst import FORMATS, SqlRefused
from api.audit.chain import audit
from api.security import ROLES, issue_token
from api.sso.config import SsoError, SsoSettings, configure
from api.tenants import Tenant, TenantError
from sinks.store import StoreError


def _tenant(env: Env, name: str) -> Tenant:
    tenant = env.tenants.by_name(name)
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}")
    return tenant


def _tenant_id(env: Env, name: str) -> str:
    return _tenant(env, name).tenant_id


def _any_tenant_id(env: Env, name: str | None) -> str | None:
    """None (or no name): every tenant."""
    return _tenant_id(env, name) if name else None


OPERATOR = {"actor_id": "operator", "actor_role": "operator"}


def _on_record(
    env: Env, tenant_id: str, action: str, resource: str, detail: dict[str, Any]
) -> None:
    """The operator's row, before the change it records (audit or nothing)."""
    audit(env.store, tenant_id=tenant_id, **OPERATOR, action=action, resource=resource,
          outcome="ok", detail=detail)  # fmt: skip


# --- tenants and tokens --------------------------------------------------------------
class TenantCreate(BaseModel):
    name: str = Field(description="Unique tenant name.")


class TenantCreated(BaseModel):
    tenant_id: str
    name: str
    write_key: str = Field(description="Ingest write key. Shown once; only its hash is stored.")


def create_tenant(env: Env, req: TenantCreate) -> dict[str, str]:
    def audited(tenant: Tenant) -> None:
        tid = tenant.tenant_id
        _on_record(env, tid, "write_key.issued", f"tenant:{tid}", {"name": req.name})

    tenant, key = env.tenants.create(req.name, before_insert=audited)
    return {"tenant_id": tenant.tenant_id, "name": tenant.name, "write_key": key}


class TokenRequest(BaseModel):
    tenant: str = Field(description="Tenant name.")
    role: str = Field(description=f"One of: {', '.join(ROLES)}.")
    user_id: str | None = None


class TokenIssued(BaseModel):
    token: str
    expires_in: int


def mint_token(env: Env, req: TokenRequest) -> dict[str, Any]:
    if req.role not in ROLES:
        raise TenantError(f"role must be one of {', '.join(ROLES)}")
    tenant = _tenant(env, req.tenant)
    ttl_s = env.settings.token_ttl_s
    token = issue_token(
        env.secrets.token_secret,
        tenant_id=tenant.tenant_id,
        tenant_name=tenant.name,
        role=req.role,
        user_id=req.user_id,
        ttl_s=ttl_s,
    )
    detail = {"role": req.role, "ttl_s": ttl_s}
    _on_record(env, tenant.tenant_id, "token.issued", f"user:{req.user_id or ''}", detail)
    return {"token": token, "expires_in": ttl_s}


# --- org data (the CLI's `skillstream org ...`) --------------------------------------
class OrgLinkRequest(BaseModel):
    tenant: str = Field(description="Tenant name.")
    relation: str = Field(description="manager | mentor | program_owner")
    subject_id: str
    object_id: str
    unlink: bool = False


def org_link(env: Env, req: OrgLinkRequest) -> dict[str, Any]:
    from api.reports.org import Link, OrgRegistry

    link = Link(_tenant_id(env, req.tenant), req.relation, req.subject_id, req.object_id)
    org = OrgRegistry(env.store)
    (org.unlink if req.unlink else org.link)(link, actor="operator", actor_role="operator")
    return {**link.__dict__, "deleted": req.unlink}


class OrgLinksBulk(BaseModel):
    tenant: str
    links: list[tuple[str, str, str]] = Field(description="(relation, subject_id, object_id)")


def org_bulk(env: Env, req: OrgLinksBulk) -> dict[str, int]:
    from api.reports.org import Link, OrgRegistry

    tid = _tenant_id(env, req.tenant)
    OrgRegistry(env.store).link_many(
        [Link(tid, r, s, o) for r, s, o in req.links], actor="operator", actor_role="operator"
    )
    return {"linked": len(req.links)}


class OrgListRequest(BaseModel):
    tenant: str
    relation: str | None = None


def org_list(env: Env, req: OrgListRequest) -> list[dict[str, Any]]:
    from api.reports.org import OrgRegistry

    tid = _tenant_id(env, req.tenant)
    return [lk.__dict__ for lk in OrgRegistry(env.store).links(tid, req.relation)]


# --- governance: audit verify, purge, legal holds, flags, origins --------------------
class AnyTenant(BaseModel):
    tenant: str | None = None


def audit_verify(env: Env, req: AnyTenant) -> list[dict[str, Any]]:
    from api.audit.chain import verify

    return [v.as_dict() for v in verify(env.store, _any_tenant_id(env, req.tenant))]


def purge(env: Env, req: AnyTenant) -> list[dict[str, Any]]:
    from api.retention.purge import purge_all

    tid = _any_tenant_id(env, req.tenant)
    reports = purge_all(env.store, env.settings, env.objects, tenant_id=tid, actor_id="operator")
    return [r.__dict__ for r in reports]


class AdminHold(BaseModel):
    tenant: str
    kind: Literal["tenant", "user", "range"]
    reason: str
    user_id: str | None = None
    from_ts: datetime | None = None
    to_ts: datetime | None = None


def hold_add(env: Env, req: AdminHold) -> dict[str, Any]:
    from api.retention.holds import place_hold

    return place_hold(
        env.store,
        tenant_id=_tenant_id(env, req.tenant),
        kind=req.kind,
        user_id=req.user_id,
        from_ts=req.from_ts,
        to_ts=req.to_ts,
        reason=req.reason,
        **OPERATOR,
    ).as_dict()


class OneTenant(BaseModel):
    tenant: str


def hold_list(env: Env, req: OneTenant) -> list[dict[str, Any]]:
    from api.retention.holds import list_holds

    return [h.as_dict() for h in list_holds(env.store, _tenant_id(env, req.tenant))]


class HoldRelease(BaseModel):
    tenant: str
    hold_id: str


def hold_release(env: Env, req: HoldRelease) -> dict[str, Any]:
    from api.retention.holds import release_hold

    tid = _tenant_id(env, req.tenant)
    return release_hold(env.store, tenant_id=tid, hold_id=req.hold_id, **OPERATOR).as_dict()


class AdminFlags(BaseModel):
    tenant: str
    enable: list[str] = []
    disable: list[str] = []


def capabilities(env: Env, req: AdminFlags) -> dict[str, Any]:
    from api.capabilities import set_flags

    flags = set_flags(
        env.store,
        env.tenants,
        _tenant_id(env, req.tenant),
        enable=req.enable,
        disable=req.disable,
        **OPERATOR,
    )
    return {"tenant": req.tenant, "flags": flags}


class OriginsChange(BaseModel):
    tenant: str = Field(description="Tenant name.")
    add: list[str] = Field(default_factory=list, description="Origins, e.g. https://app.example")
    remove: list[str] = Field(default_factory=list)


def origins(env: Env, req: OriginsChange) -> dict[str, Any]:
    """Browser origins allowed to send the tenant's events (CORS); audited."""
    now = env.origins.change(
        _tenant_id(env, req.tenant), add=req.add, remove=req.remove, **OPERATOR
    )
    return {"tenant": req.tenant, "origins": now}


# --- analysts' SQL and the readiness term --------------------------------------------
class AdminSql(BaseModel):
    sql: str = Field(max_length=100_000)
    format: Literal["json", "csv", "parquet"] = "json"
    tenant: str | None = Field(None, description="Tenant name: its rows only. None: every tenant.")


def sql(env: Env, req: AdminSql) -> bytes:
    """An analyst's query for the operator: every tenant, or one (row-filtered
    as a tenant's analyst is)."""
    from api import analyst

    s = env.settings
    return analyst.run(
        env.store,
        req.sql,
        tenant_id=_any_tenant_id(env, req.tenant),
        fmt=req.format,
        max_rows=s.sql_max_rows,
        max_seconds=s.sql_max_seconds,
    ).body


class TermRequest(BaseModel):
    tenant: str
    term: Literal["month", "quarter", "half", "year"] | None = Field(
        None, description="Set it (audited); none: only read it."
    )


def readiness_term(env: Env, req: TermRequest) -> dict[str, Any]:
    """The tenant's readiness-delta term; ``term`` sets it first (audited)."""
    from api.reports import terms

    tid = _tenant_id(env, req.tenant)
    if req.term is not None:
        terms.set_term(env.store, tid, req.term, **OPERATOR)
    return {
        "tenant": req.tenant,
        "term": terms.tenant_term(env.store, tid, env.settings.readiness_term),
    }


class XapiMappingRequest(BaseModel):
    tenant: str = Field(description="Tenant name.")
    rules: list[dict[str, Any]] | None = Field(
        None,
        description="Replace the tenant's rules, tried before the defaults: "
        "[{verb, activity_type (optional), event}] (docs/ingestion.md, 'xAPI'). "
        "None: keep them; []: none.",
    )
    persona: str | None = Field(None, description="Persona of xAPI learners (student by default).")


def xapi_mapping(env: Env, req: XapiMappingRequest) -> dict[str, Any]:
    """The tenant's xAPI mapping rules and persona; a change is audited."""
    tid = _tenant_id(env, req.tenant)
    if req.rules is None and req.persona is None:
        return {"tenant": req.tenant, **env.xapi_mappings.describe(tid)}
    now = env.xapi_mappings.change(tid, rules=req.rules, persona=req.persona, **OPERATOR)
    return {"tenant": req.tenant, **now}


# --- sign-in with the tenant's identity provider (docs/sign-in.md) -----------------
class TenantSso(SsoSettings):
    tenant: str = Field(description="Tenant name.")


def tenant_sso(env: Env, req: TenantSso) -> dict[str, Any]:
    """The tenant's OpenID provider, by discovery; the secret sealed; audited."""
    tenant = _tenant(env, req.tenant)
    cfg = configure(env.sso.registry, env.sso.providers, tenant.tenant_id, req, **OPERATOR)
    return {"tenant": tenant.name, **cfg.public()}


# --- historical import (`skillstream import`, api/imports/) -------------------------
class ImportStart(BaseModel):
    tenant: str = Field(description="Tenant name: every imported event is this tenant's.")
    import_id: str
    source: str
    dry_run: bool = False


class ImportTarget(BaseModel):
    tenant_id: str
    name: str
    pii_salt: str = Field(description="The tenant's PII salt: the import hashes before Kafka.")


def import_start(env: Env, req: ImportStart) -> dict[str, str]:
    """The tenant an import writes for, and its salt (the CLI hashes PII
    itself); audited unless a dry run. Behind the run dir's admin secret,
    whose holder can open every salt anyway."""
    tenant = _tenant(env, req.tenant)
    if not req.dry_run:
        _on_record(env, tenant.tenant_id, "import.started", f"import:{req.import_id}",
                   {"source": req.source[:500]})  # fmt: skip
    return {"tenant_id": tenant.tenant_id, "name": tenant.name, "pii_salt": tenant.pii_salt}


class ImportFinish(BaseModel):
    tenant: str
    import_id: str
    status: str
    counts: dict[str, int] = Field(default_factory=dict)


def import_finish(env: Env, req: ImportFinish) -> dict[str, str]:
    tid = _tenant_id(env, req.tenant)
    _on_record(env, tid, f"import.{req.status}", f"import:{req.import_id}", dict(req.counts))
    return {"import_id": req.import_id, "status": req.status}


# --- the doors ----------------------------------------------------------------------
A = "/v1/admin"
CREATE_TENANT = Op(
    "create_tenant",
    "POST",
    f"{A}/tenants",
    TenantCreate,
    create_tenant,
    errors=((TenantError, 409),),
    status_code=201,
    response_model=TenantCreated,
)
MINT_TOKEN = Op(
    "mint_token",
    "POST",
    f"{A}/tokens",
    TokenRequest,
    mint_token,
    status_code=201,
    response_model=TokenIssued,
)
ORG_LINK = Op("org_link", "POST", f"{A}/org/links", OrgLinkRequest, org_link)
ORG_BULK = Op("org_bulk", "POST", f"{A}/org/links/bulk", OrgLinksBulk, org_bulk)
ORG_LIST = Op("org_list", "GET", f"{A}/org/links", OrgListRequest, org_list, in_body=False)
ORIGINS = Op("origins", "POST", f"{A}/origins", OriginsChange, origins)
SQL = Op(
    "sql",
    "POST",
    f"{A}/sql",
    AdminSql,
    sql,
    errors=(*MISSING, ((SqlRefused, StoreError), 400)),
    timeout_s=None,
    media_type=lambda req: FORMATS[req.format][1],
    summary="`skillstream sql`: a read-only SELECT (api/analyst.py)",
)
READINESS_TERM = Op(
    "readiness_term",
    "POST",
    f"{A}/tenants/term",
    TermRequest,
    readiness_term,
    summary="`skillstream tenant term`: the readiness-delta term",
)
# a LookupError of the governance functions (no such tenant id) is the request's fault
GOVERNANCE = (*INVALID, (LookupError, 422))
AUDIT_VERIFY = Op(
    "audit_verify",
    "GET",
    f"{A}/audit/verify",
    AnyTenant,
    audit_verify,
    errors=GOVERNANCE,
    in_body=False,
)
PURGE = Op(
    "purge",
    "POST",
    f"{A}/purge",
    AnyTenant,
    purge,
    errors=GOVERNANCE,
    in_body=False,
    timeout_s=None,
)
HOLD_ADD = Op("hold_add", "POST", f"{A}/legal-holds", AdminHold, hold_add, errors=GOVERNANCE)
HOLD_LIST = Op(
    "hold_list", "GET", f"{A}/legal-holds", OneTenant, hold_list, errors=GOVERNANCE, in_body=False
)
HOLD_RELEASE = Op(
    "hold_release",
    "POST",
    f"{A}/legal-holds/{{hold_id}}/release",
    HoldRelease,
    hold_release,
    errors=GOVERNANCE,
    in_body=False,
    timeout_s=None,
)
TENANT_SSO = Op(
    "tenant_sso",
    "POST",
    f"{A}/tenants/sso",
    TenantSso,
    tenant_sso,
    errors=(*MISSING, (SsoError, 422)),
    summary="`skillstream tenant sso`: the tenant's OpenID provider (audited)",
)
CAPABILITIES = Op(
    "capabilities", "POST", f"{A}/capabilities", AdminFlags, capabilities, errors=GOVERNANCE
)
IMPORT_START = Op(
    "import_start",
    "POST",
    f"{A}/imports/start",
    ImportStart,
    import_start,
    response_model=ImportTarget,
    summary="`skillstream import`: the tenant an import writes for (audited)",
)
IMPORT_FINISH = Op(
    "import_finish",
    "POST",
    f"{A}/imports/finish",
    ImportFinish,
    import_finish,
    summary="`skillstream import`: how it ended (audited)",
)
XAPI_MAPPING = Op(
    "xapi_mapping",
    "POST",
    f"{A}/tenants/xapi-mapping",
    XapiMappingRequest,
    xapi_mapping,
    summary="`skillstream tenant xapi`: the tenant's xAPI mapping rules (audited)",
)

OPS: tuple[Op, ...] = (
    CREATE_TENANT,
    MINT_TOKEN,
    ORG_LINK,
    ORG_BULK,
    ORG_LIST,
    ORIGINS,
    SQL,
    READINESS_TERM,
    AUDIT_VERIFY,
    PURGE,
    HOLD_ADD,
    HOLD_LIST,
    HOLD_RELEASE,
    CAPABILITIES,
    TENANT_SSO,
    IMPORT_START,
    IMPORT_FINISH,
    XAPI_MAPPING,
)
