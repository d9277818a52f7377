"""Operator endpoints behind the run dir's admin secret (used by the CLI
while `skillstream up` owns the embedded store)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api import operator
from api.deps import Admin, Ctx
from api.security import ROLES
from api.tenants import TenantError

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
