"""Org data over the API: manager → learner, mentor → learner and program
owner → program links. company_admin manages its own tenant; platform_admin
any tenant (it names the tenant in the body). Every change is audited."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import Ctx, CurrentPrincipal
from api.reports.org import Link, OrgError, OrgRegistry
from api.routes.reports import deny
from api.security import Principal

router = APIRouter(prefix="/v1/org", tags=["org"])

Relation = Literal["manager", "mentor", "program_owner"]


class LinkIn(BaseModel):
    relation: Relation = Field(description="manager | mentor | program_owner")
    subject_id: str = Field(description="The manager, mentor or program owner (a user id).")
    object_id: str = Field(description="The learner (manager, mentor) or program id (owner).")
    tenant_id: str | None = Field(None, description="platform_admin only; others: omit.")


class LinkOut(BaseModel):
    tenant_id: str
    relation: str
    subject_id: str
    object_id: str


def _tenant(ctx, principal: Principal, tenant_id: str | None, action: str) -> str:
    if principal.role == "platform_admin":
        if not tenant_id:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "tenant_id is required")
        return tenant_id
    if principal.role != "company_admin":
        raise deny(ctx, principal, action, "org data is managed by company_admin and above", {})
    if tenant_id is not None and tenant_id != principal.tenant_id:
        raise deny(ctx, principal, action, f"tenant {tenant_id!r} is outside this token's tenant",
                   {"tenant_id": tenant_id})  # fmt: skip
    return principal.tenant_id


async def _change(ctx, principal: Principal, body: LinkIn, unlink: bool) -> LinkOut:
    action = "org.unlink" if unlink else "org.link"
    tenant = _tenant(ctx, principal, body.tenant_id, action)
    link = Link(tenant, body.relation, body.subject_id, body.object_id)
    org = OrgRegistry(ctx.store)
    fn = org.unlink if unlink else org.link
    try:
        await run_in_threadpool(
            lambda: fn(link, actor=principal.user_id or "", actor_role=principal.role)
        )
    except OrgError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    return LinkOut(**link.__dict__)


@router.post("/links", response_model=LinkOut, status_code=status.HTTP_201_CREATED)
async def create_link(body: LinkIn, ctx: Ctx, principal: CurrentPrincipal) -> LinkOut:
    return await _change(ctx, principal, body, unlink=False)


@router.post("/links/delete", response_model=LinkOut)
async def delete_link(body: LinkIn, ctx: Ctx, principal: CurrentPrincipal) -> LinkOut:
    return await _change(ctx, principal, body, unlink=True)


@router.get("/links", response_model=list[LinkOut])
async def list_links(
    ctx: Ctx,
    principal: CurrentPrincipal,
    relation: Annotated[Relation | None, Query()] = None,
    subject_id: Annotated[str | None, Query()] = None,
    tenant_id: Annotated[str | None, Query(description="platform_admin only.")] = None,
) -> list[LinkOut]:
    tenant = _tenant(ctx, principal, tenant_id, "org.list")
    links = await run_in_threadpool(
        lambda: OrgRegistry(ctx.store).links(tenant, relation, subject_id)
    )
    return [LinkOut(**lk.__dict__) for lk in links]
