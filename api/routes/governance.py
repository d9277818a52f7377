"""Legal holds, retention policies, deletion requests, tenant capability
flags and audit verification. company_admin acts on its own tenant,
platform_admin on any (naming it); everything here is audited. The CLI's
admin-secret doors to the same are in ``api/routes/admin.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.audit.chain import verify
from api.capabilities import set_flags
from api.deps import Ctx, CurrentPrincipal
from api.retention.erasure import erase_user
from api.retention.holds import HoldError, list_holds, place_hold, release_hold
from api.retention.policies import PolicyError, effective, set_policy
from api.retention.purge import cadence, last_purge, set_cadence
from api.routes.org import _tenant
from api.routes.reports import ERRORS, deny

router = APIRouter(prefix="/v1/governance", tags=["governance"])


class HoldIn(BaseModel):
    kind: Literal["tenant", "user", "range"]
    reason: str = Field(min_length=1, max_length=1000)
    user_id: str | None = Field(None, description="kind=user: the held user.")
    from_ts: datetime | None = Field(None, description="kind=range: start (inclusive).")
    to_ts: datetime | None = Field(None, description="kind=range: end (exclusive).")
    tenant_id: str | None = Field(None, description="platform_admin only.")


@router.post("/legal-holds", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_hold(body: HoldIn, ctx: Ctx, principal: CurrentPrincipal) -> dict:
    tenant = _tenant(ctx, principal, body.tenant_id, "legal_hold.place")
    try:
        h = await run_in_threadpool(
            lambda: place_hold(
                ctx.store,
                tenant_id=tenant,
                kind=body.kind,
                user_id=body.user_id,
                from_ts=body.from_ts,
                to_ts=body.to_ts,
                reason=body.reason,
                actor_id=principal.user_id or "",
                actor_role=principal.role,
            )
        )
    except HoldError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    return h.as_dict()


@router.get("/legal-holds", responses=ERRORS)
async def get_holds(
    ctx: Ctx,
    principal: CurrentPrincipal,
    tenant_id: str | None = None,
    include_released: bool = False,
) -> list[dict]:
    tenant = _tenant(ctx, principal, tenant_id, "legal_hold.list")
    holds = await run_in_threadpool(
        lambda: list_holds(ctx.store, tenant, include_released=include_released)
    )
    return [h.as_dict() for h in holds]


@router.post("/legal-holds/{hold_id}/release", responses=ERRORS)
async def release(
    hold_id: str, ctx: Ctx, principal: CurrentPrincipal, tenant_id: str | None = None
) -> dict:
    tenant = _tenant(ctx, principal, tenant_id, "legal_hold.release")
    try:
        h = await run_in_threadpool(
            lambda: release_hold(
                ctx.store,
                tenant_id=tenant,
                hold_id=hold_id,
                actor_id=principal.user_id or "",
                actor_role=principal.role,
            )
        )
    except HoldError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return h.as_dict()


class PolicyIn(BaseModel):
    subject: str = Field(description="An event name, 'aggregates' or 'exports'.")
    retention_days: int | None = Field(None, description="None: back to the default.")
    tenant_id: str | None = None


@router.get("/retention", responses=ERRORS)
async def get_retention(
    ctx: Ctx, principal: CurrentPrincipal, tenant_id: str | None = None
) -> dict:
    tenant = _tenant(ctx, principal, tenant_id, "retention.read")
    return await run_in_threadpool(effective, ctx.store, ctx.settings, tenant)


@router.put("/retention", responses=ERRORS)
async def put_retention(body: PolicyIn, ctx: Ctx, principal: CurrentPrincipal) -> dict:
    tenant = _tenant(ctx, principal, body.tenant_id, "retention.policy")
    try:
        return await run_in_threadpool(
            lambda: set_policy(
                ctx.store,
                ctx.settings,
                tenant_id=tenant,
                subject=body.subject,
                days=body.retention_days,
                actor_id=principal.user_id or "",
                actor_role=principal.role,
            )
        )
    except PolicyError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc


class ScheduleIn(BaseModel):
    every_s: int | None = Field(None, description="Purge cadence in seconds; None: the default.")
    tenant_id: str | None = None


@router.get("/purge-schedule", responses=ERRORS)
async def get_schedule(ctx: Ctx, principal: CurrentPrincipal, tenant_id: str | None = None) -> dict:
    tenant = _tenant(ctx, principal, tenant_id, "retention.schedule.read")

    def read() -> dict:
        last = last_purge(ctx.store, tenant)
        return {
            "tenant_id": tenant,
            "every_s": cadence(ctx.store, ctx.settings, tenant),
            "last_purge": last.isoformat().replace("+00:00", "Z") if last else None,
        }

    return await run_in_threadpool(read)


@router.put("/purge-schedule", responses=ERRORS)
async def put_schedule(body: ScheduleIn, ctx: Ctx, principal: CurrentPrincipal) -> dict:
    """Per-tenant purge cadence (audited)."""
    tenant = _tenant(ctx, principal, body.tenant_id, "retention.schedule")
    try:
        await run_in_threadpool(
            lambda: set_cadence(
                ctx.store,
                tenant_id=tenant,
                every_s=body.every_s,
                actor_id=principal.user_id or "",
                actor_role=principal.role,
            )
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    return {"tenant_id": tenant, "every_s": cadence(ctx.store, ctx.settings, tenant)}


class ErasureIn(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    tenant_id: str | None = None


@router.post("/deletion-requests", responses={**ERRORS, 409: {"description": "Legal hold."}})
async def deletion_request(body: ErasureIn, ctx: Ctx, principal: CurrentPrincipal) -> dict:
    """Erase a user's data; 409 with the reason when a legal hold covers it."""
    tenant = _tenant(ctx, principal, body.tenant_id, "erasure.request")
    r = await run_in_threadpool(
        lambda: erase_user(
            ctx.store,
            ctx.objects,
            tenant_id=tenant,
            user_id=body.user_id,
            actor_id=principal.user_id or "",
            actor_role=principal.role,
            publish=ctx.publish_erasure,
        )
    )
    if r.status == "refused":
        raise HTTPException(status.HTTP_409_CONFLICT, detail=r.as_dict())
    return r.as_dict()


class FlagsIn(BaseModel):
    tenant_id: str
    enable: list[str] = []
    disable: list[str] = []


@router.get("/capabilities", responses=ERRORS)
async def get_flags(ctx: Ctx, principal: CurrentPrincipal, tenant_id: str | None = None) -> dict:
    tenant = _tenant(ctx, principal, tenant_id, "tenant.capabilities.read")
    t = await run_in_threadpool(ctx.tenants.by_id, tenant)
    return {"tenant_id": tenant, "flags": sorted(t.capabilities) if t else []}


@router.put("/capabilities", responses=ERRORS)
async def put_flags(body: FlagsIn, ctx: Ctx, principal: CurrentPrincipal) -> dict:
    """Tenant capability flags: platform_admin only (they are the tenant's plan)."""
    if principal.role != "platform_admin":
        raise deny(ctx, principal, "tenant.capabilities", "platform_admin only", {})
    try:
        flags = await run_in_threadpool(
            lambda: set_flags(
                ctx.store,
                ctx.tenants,
                body.tenant_id,
                enable=body.enable,
                disable=body.disable,
                actor_id=principal.user_id or "",
                actor_role=principal.role,
            )
        )
    except (ValueError, LookupError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    return {"tenant_id": body.tenant_id, "flags": flags}


@router.get("/audit/verify", responses=ERRORS)
async def audit_verify(
    ctx: Ctx, principal: CurrentPrincipal, tenant_id: str | None = None
) -> list[dict]:
    """Recompute the tenant's audit hash chain (audit_read)."""
    if "audit_read" not in principal.capabilities:
        raise deny(ctx, principal, "audit.verify", "needs the audit_read capability", {})
    tenant = _tenant(ctx, principal, tenant_id, "audit.verify")
    return [v.as_dict() for v in await run_in_threadpool(verify, ctx.store, tenant)]
