"""The dashboard page (static files, no build step) and, in demo mode only,
short-lived tokens for a demo user of each role ("view as").

The demo routes are a router of their own that ``create_app`` mounts only
in demo mode (`skillstream up --demo`): without it they do not exist (404,
absent from the OpenAPI document). Even then they answer loopback clients
only (``require_loopback_client``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from api.demo_history import progress as demo_progress
from api.deps import Ctx, LoopbackOnly
from api.reports.org import OrgRegistry
from api.security import ROLES, issue_token

STATIC = Path(__file__).resolve().parents[1] / "static"
DEMO_TOKEN_TTL_S = 15 * 60

router = APIRouter(tags=["dashboard"])
demo_router = APIRouter(tags=["demo"], dependencies=[LoopbackOnly])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/v1/dashboard/config", tags=["dashboard"])
async def config(ctx: Ctx) -> dict:
    s = ctx.settings
    out = {"demo": s.demo_mode, "stale_after_s": s.stale_after_s, "target": s.engagement_target}
    if s.demo_mode:  # the demo offers its companies' sign-in up front (elsewhere: a hint finds it)
        out["sign_in"] = await run_in_threadpool(_demo_sign_in, ctx)
    return out


def _demo_sign_in(ctx) -> list[dict]:
    names = {t.tenant_id: t.name for t in ctx.tenants.all()}
    return [
        {"tenant": names[c.tenant_id], "login_url": f"/v1/auth/login?tenant={names[c.tenant_id]}"}
        for c in ctx.sso.registry.all()
        if c.tenant_id in names
    ]


def demo_users(ctx, tenant_name: str | None) -> list[dict]:
    tenants = ctx.tenants.all()
    if tenant_name:
        tenants = [t for t in tenants if t.name == tenant_name]
    else:  # the demo generator's tenants first
        tenants = sorted(tenants, key=lambda t: (not t.name.startswith("demo-"), t.name))
    if not tenants:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such tenant")
    tenant = tenants[0]
    org = OrgRegistry(ctx.store)
    links = org.links(tenant.tenant_id)

    def first(relation: str, attr: str = "subject_id") -> str | None:
        return next((getattr(lk, attr) for lk in links if lk.relation == relation), None)

    manager = first("manager")
    learner = next(
        (lk.object_id for lk in links if lk.relation == "manager" and lk.subject_id == manager),
        None,
    )
    users = {
        "platform_admin": "platform-admin",
        "company_admin": f"{tenant.name}-admin",
        "program_owner": first("program_owner"),
        "manager": manager,
        "mentor": first("mentor"),
        "learner": learner,
    }
    out = []
    for role in ROLES:
        user = users.get(role)  # analysts query SQL, not the dashboard
        if user is None:
            continue
        token = issue_token(
            ctx.secrets.token_secret,
            tenant_id=tenant.tenant_id,
            tenant_name=tenant.name,
            role=role,
            user_id=user,
            ttl_s=DEMO_TOKEN_TTL_S,
        )
        out.append({"role": role, "user_id": user, "tenant": tenant.name, "token": token})
    return out


@demo_router.get("/v1/demo/tokens")
async def demo_tokens(
    ctx: Ctx, tenant: Annotated[str | None, Query(description="Tenant name.")] = None
) -> dict:
    """Demo mode only, loopback clients only: a 15-minute token per role for
    a demo user who has data, so the dashboard can "view as" each role."""
    users = await run_in_threadpool(demo_users, ctx, tenant)
    names = [t.name for t in await run_in_threadpool(ctx.tenants.all)]
    return {"tenants": names, "users": users, "ttl_s": DEMO_TOKEN_TTL_S}


@demo_router.get("/v1/demo/history")
async def demo_history(ctx: Ctx) -> dict:
    """Demo mode only, loopback clients only: how much of the demo's history
    the reports can see yet (`loading`, `loaded` of `days`), for the loading
    state the dashboard shows instead of zeros."""
    fresh = ctx.sink.data_fresh_as_of if ctx.sink else lambda _tenant: None
    ids = {t.name: t.tenant_id for t in await run_in_threadpool(ctx.tenants.all)}
    run_dir = ctx.settings.run_dir
    return await run_in_threadpool(demo_progress, ctx.store, run_dir, ids, fresh)
