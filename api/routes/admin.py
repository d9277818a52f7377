"""Operator endpoints behind the run dir's admin secret (used by the CLI
while `skillstream up` owns the embedded store)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api import operator
from api.analyst import FORMATS, SqlRefused
from api.deps import Admin, Ctx
from api.security import ROLES
from api.tenants import TenantError
from sinks.store import StoreError

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Admin])


class TenantCreate(BaseModel):
    name: str = Field(description="Unique tenant name.")


class TenantCreated(BaseModel):
    tenant_id: str
    name: str
    write_key: str = Field(description="Ingest write key. Shown once; only its hash is stored.")


class TokenRequest(BaseModel):
    tenant: str = Field(description="Tenant name.")
    role: str = Field(description=f"One of: {', '.join(ROLES)}.")
    user_id: str | None = None


class TokenIssued(BaseModel):
    token: str
    expires_in: int


@router.post("/tenants", response_model=TenantCreated, status_code=status.HTTP_201_CREATED)
async def create_tenant(body: TenantCreate, ctx: Ctx) -> TenantCreated:
    try:
        tenant, key = await run_in_threadpool(operator.create_tenant, ctx.tenants, body.name)
    except TenantError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return TenantCreated(tenant_id=tenant.tenant_id, name=tenant.name, write_key=key)


@router.post("/tokens", response_model=TokenIssued, status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenRequest, ctx: Ctx) -> TokenIssued:
    ttl = ctx.settings.token_ttl_s
    try:
        token = await run_in_threadpool(
            lambda: operator.mint_token(
                ctx.tenants,
                ctx.secrets,
                tenant_name=body.tenant,
                role=body.role,
                user_id=body.user_id,
                ttl_s=ttl,
            )
        )
    except operator.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except TenantError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    return TokenIssued(token=token, expires_in=ttl)


# --- org data (the CLI's `skillstream org ...`) ------------------------------------
class OrgLinkRequest(BaseModel):
    tenant: str = Field(description="Tenant name.")
    relation: str = Field(description="manager | mentor | program_owner")
    subject_id: str
    object_id: str
    unlink: bool = False


class OrgLinksBulk(BaseModel):
    tenant: str
    links: list[tuple[str, str, str]] = Field(description="(relation, subject_id, object_id)")


@router.post("/org/links")
async def org_link(body: OrgLinkRequest, ctx: Ctx) -> dict:
    try:
        return await run_in_threadpool(
            lambda: operator.org_change(
                ctx.tenants, ctx.store, body.tenant, body.relation, body.subject_id,
                body.object_id, unlink=body.unlink,
            )
        )  # fmt: skip
    except operator.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc


@router.post("/org/links/bulk")
async def org_link_bulk(body: OrgLinksBulk, ctx: Ctx) -> dict:
    try:
        n = await run_in_threadpool(
            lambda: operator.org_bulk(ctx.tenants, ctx.store, body.tenant, body.links)
        )
    except operator.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    return {"linked": n}


@router.get("/org/links")
async def org_list(ctx: Ctx, tenant: str, relation: str | None = None) -> list[dict]:
    try:
        return await run_in_threadpool(
            lambda: operator.org_list(ctx.tenants, ctx.store, tenant, relation)
        )
    except operator.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


# --- browser origins (the CLI's `skillstream tenant origins`) -----------------------
class OriginsChange(BaseModel):
    tenant: str = Field(description="Tenant name.")
    add: list[str] = Field(default_factory=list, description="Origins, e.g. https://app.example")
    remove: list[str] = Field(default_factory=list)


@router.post("/origins")
async def tenant_origins(body: OriginsChange, ctx: Ctx) -> dict:
    try:
        return await run_in_threadpool(
            lambda: operator.set_origins(
                ctx.tenants, ctx.origins, body.tenant, body.add, body.remove
            )
        )
    except operator.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc


class AdminSql(BaseModel):
    sql: str = Field(max_length=100_000)
    format: Literal["json", "csv", "parquet"] = "json"
    tenant: str | None = Field(None, description="Tenant name: its rows only. None: every tenant.")


@router.post("/sql", summary="`skillstream sql`: a read-only SELECT (api/analyst.py)")
async def run_sql(body: AdminSql, ctx: Ctx) -> Response:
    try:
        out = await run_in_threadpool(
            operator.sql, ctx.tenants, ctx.settings, body.sql, body.format, body.tenant
        )
    except operator.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except (SqlRefused, StoreError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)[:1000]) from exc
    return Response(out, media_type=FORMATS[body.format][1])
