"""The in-app bell, email opt-in, and the tenant's webhooks with their delivery log."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.audit.chain import audit
from api.capabilities import CapabilityError, require_flag
from api.deps import Ctx, CurrentPrincipal
from api.notify.config import ConfigError, add_webhook, remove_webhook, set_prefs, webhooks
from api.notify.config import get_prefs as load_prefs
from api.routes.org import _tenant
from api.routes.reports import ERRORS, deny

router = APIRouter(tags=["notifications"])


def _me(principal) -> str:
    if not principal.user_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "this token names no user")
    return principal.user_id


@router.get("/v1/notifications", responses=ERRORS)
async def list_notifications(
    ctx: Ctx,
    principal: CurrentPrincipal,
    unread: Annotated[bool, Query(description="Only unread ones.")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    """The caller's bell, newest first, with the unread count."""
    me = _me(principal)
    rows = await run_in_threadpool(
        ctx.store.query,
        "SELECT notification_id, kind, title, body, link, toString(created_at) AS created_at,"
        " toString(read_at) AS read_at FROM notifications FINAL"
        " WHERE tenant_id = {t:String} AND user_id = {u:String}"
        " AND ({unread:UInt8} = 0 OR read_at IS NULL) ORDER BY created_at DESC LIMIT {n:UInt32}",
        {"t": principal.tenant_id, "u": me, "unread": int(unread), "n": limit},
    )
    n = await run_in_threadpool(
        ctx.store.query,
        "SELECT count() AS n FROM notifications FINAL WHERE tenant_id = {t:String}"
        " AND user_id = {u:String} AND read_at IS NULL",
        {"t": principal.tenant_id, "u": me},
    )
    return {"items": rows, "unread": int(n[0]["n"])}


@router.post("/v1/notifications/{notification_id}/read", responses=ERRORS)
async def mark_read(
    ctx: Ctx, principal: CurrentPrincipal, notification_id: Annotated[str, Path(max_length=64)]
) -> dict:
    me = _me(principal)
    rows = await run_in_threadpool(
        ctx.store.query,
        "SELECT * FROM notifications FINAL WHERE tenant_id = {t:String} AND user_id = {u:String}"
        " AND notification_id = {id:String}",
        {"t": principal.tenant_id, "u": me, "id": notification_id},
    )
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such notification")
    row = rows[0]
    if row["read_at"] is None:
        row.update(read_at=datetime.now(UTC), version=time.time_ns())
        await run_in_threadpool(ctx.store.insert, "notifications", [row])
    return {"notification_id": notification_id, "read": True}


class PrefsIn(BaseModel):
    email: str = Field("", description="Where report-ready email goes.")
    email_opt_in: bool = Field(False, description="Send email when my exports are ready.")


@router.get("/v1/notifications/preferences", responses=ERRORS)
async def get_prefs(ctx: Ctx, principal: CurrentPrincipal) -> dict:
    p = await run_in_threadpool(load_prefs, ctx.store, principal.tenant_id, _me(principal))
    return p.__dict__


@router.put("/v1/notifications/preferences", responses=ERRORS)
async def put_prefs(body: PrefsIn, ctx: Ctx, principal: CurrentPrincipal) -> dict:
    """Email opt-in / opt-out (audited)."""
    me = _me(principal)
    before = await run_in_threadpool(load_prefs, ctx.store, principal.tenant_id, me)
    try:
        p = await run_in_threadpool(
            set_prefs, ctx.store, principal.tenant_id, me, body.email, body.email_opt_in
        )
    except ConfigError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    await run_in_threadpool(
        lambda: audit(
            ctx.store,
            principal=principal,
            undo=lambda: set_prefs(
                ctx.store, principal.tenant_id, me, before.email, before.email_opt_in
            ),
            action="notify.email_opt_in" if p.email_opt_in else "notify.email_opt_out",
            resource=f"user:{me}",
            outcome="ok",
        )
    )
    return p.__dict__


class WebhookIn(BaseModel):
    url: str = Field(
        description="Receives POSTs of report.ready events, signed the Standard Webhooks way; "
        "must resolve to public addresses only (or WEBHOOK_ALLOW_NETWORKS)."
    )
    tenant_id: str | None = Field(None, description="platform_admin only.")


@router.post("/v1/webhooks", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_webhook(body: WebhookIn, ctx: Ctx, principal: CurrentPrincipal) -> dict:
    """Register a webhook (company_admin; the tenant's `webhooks` flag on).
    The signing secret (`whsec_…`) is shown once."""
    tenant = _tenant(ctx, principal, body.tenant_id, "webhook.create")
    try:
        await run_in_threadpool(require_flag, ctx.store, tenant, "webhooks")
    except CapabilityError as exc:
        raise deny(ctx, principal, "webhook.create", str(exc), {"tenant_id": tenant}) from exc
    try:
        hook = await run_in_threadpool(
            add_webhook,
            ctx.store,
            tenant,
            body.url,
            principal.user_id or "",
            ctx.webhook_sealer,
            ctx.settings.webhook_allowed_networks,
        )
    except ConfigError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    await run_in_threadpool(
        lambda: audit(
            ctx.store,
            principal=principal,
            tenant_id=tenant,
            undo=lambda: remove_webhook(
                ctx.store, tenant, hook.webhook_id, principal.user_id or "", ctx.webhook_sealer
            ),
            action="webhook.create",
            resource=f"webhook:{hook.webhook_id}",
            outcome="ok",
            detail={"url": hook.url},
        )
    )
    return {"webhook_id": hook.webhook_id, "url": hook.url, "secret": hook.secret}


@router.get("/v1/webhooks", responses=ERRORS)
async def list_webhooks(
    ctx: Ctx, principal: CurrentPrincipal, tenant_id: str | None = None
) -> list[dict]:
    tenant = _tenant(ctx, principal, tenant_id, "webhook.list")
    hooks = await run_in_threadpool(webhooks, ctx.store, tenant, ctx.webhook_sealer)
    return [{"webhook_id": h.webhook_id, "url": h.url} for h in hooks]


@router.post("/v1/webhooks/{webhook_id}/delete", responses=ERRORS)
async def delete_webhook(
    ctx: Ctx, principal: CurrentPrincipal, webhook_id: str, tenant_id: str | None = None
) -> dict:
    tenant = _tenant(ctx, principal, tenant_id, "webhook.delete")
    known = await run_in_threadpool(webhooks, ctx.store, tenant, ctx.webhook_sealer)
    if webhook_id not in {h.webhook_id for h in known}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no webhook {webhook_id!r}")

    def delete() -> None:
        with audit(
            ctx.store,
            principal=principal,
            tenant_id=tenant,
            action="webhook.delete",
            resource=f"webhook:{webhook_id}",
            outcome="ok",
        ):
            remove_webhook(
                ctx.store, tenant, webhook_id, principal.user_id or "", ctx.webhook_sealer
            )

    try:
        await run_in_threadpool(delete)
    except ConfigError as exc:  # deleted meanwhile
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return {"webhook_id": webhook_id, "deleted": True}


@router.get("/v1/notifications/deliveries", responses=ERRORS)
async def deliveries(
    ctx: Ctx,
    principal: CurrentPrincipal,
    tenant_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    """The delivery log (company_admin): channel, recipient, status, attempts."""
    tenant = _tenant(ctx, principal, tenant_id, "notify.deliveries")
    return await run_in_threadpool(
        ctx.store.query,
        "SELECT event_id, channel, recipient, status, attempts, detail, toString(at) AS at"
        " FROM notification_deliveries FINAL WHERE tenant_id = {t:String}"
        " ORDER BY at DESC LIMIT {n:UInt32}",
        {"t": tenant, "n": limit},
    )
