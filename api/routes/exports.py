"""Exports: request (202), status, the download link; capability-gated and
scoped exactly like the reports (the scope is computed by the same code)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from api.audit.chain import audit
from api.capabilities import CapabilityError, check_export
from api.deps import Ctx, CurrentPrincipal
from api.exports.model import LIVE, ExportRepo, new_export
from api.exports.storage import LocalObjectStore
from api.reports.scope import ADMIN_ROLES
from api.routes.reports import ERRORS, _scope, deny
from api.security import Principal
from api.timebounds import storable

router = APIRouter(prefix="/v1/exports", tags=["exports"])


class ExportRequest(BaseModel):
    report: Literal["engagement", "learners", "kpis", "audit"]
    format: Literal["csv", "pdf"] = "csv"
    weeks: int = Field(8, ge=1, le=52, description="engagement: weeks (as the report).")
    days: int | None = Field(None, ge=1, le=365, description="learners/kpis: window in days.")
    at_risk: bool | None = Field(None, description="learners: only at-risk (true) or not.")
    tenant_id: str | None = Field(None, description="platform_admin only (as the reports).")
    program_id: str | None = None
    cohort_id: str | None = None
    user_id: str | None = None
    since: datetime | None = Field(None, description="audit: from this time (inclusive).")
    until: datetime | None = Field(None, description="audit: to this time (exclusive).")
    legal_hold: bool | None = Field(None, description="audit: only rows under (not under) hold.")

    @field_validator("since", "until")
    @classmethod
    def _storable(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return storable(info.field_name, value)  # 422 naming the field, not a 500 later


class ExportAccepted(BaseModel):
    export_id: str
    status: str
    status_url: str


def _audit(ctx: Any, p: Principal, action: str, export_id: str, outcome: str, **detail: Any):
    audit(
        ctx.store,
        principal=p,
        action=action,
        resource=f"export:{export_id}",
        outcome=outcome,
        detail=detail,
    )


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=ExportAccepted, responses=ERRORS
)
async def request_export(body: ExportRequest, ctx: Ctx, principal: CurrentPrincipal):
    """Queue a CSV or PDF export of a report with the report's filters. 403
    when the role or the tenant's flags do not allow it, or the filters leave
    the caller's scope."""
    try:
        await run_in_threadpool(check_export, ctx.tenants, principal, body.report, body.format)
    except CapabilityError as exc:
        raise deny(
            ctx,
            principal,
            f"export.{body.report}",
            str(exc),
            body.model_dump(mode="json", exclude_none=True),
        ) from exc
    filters = {k: getattr(body, k) for k in ("tenant_id", "program_id", "cohort_id", "user_id")}
    if body.report == "audit":
        other = body.tenant_id and body.tenant_id != principal.tenant_id
        if other and principal.role != "platform_admin":
            raise deny(
                ctx, principal, "export.audit", "tenant outside this token's tenant", filters
            )
    else:
        await _scope(
            ctx,
            principal,
            f"export.{body.report}",
            per_learner=body.report == "learners",
            **filters,
        )
    params = body.model_dump(exclude={"report", "format"}, exclude_none=True, mode="json")
    e = new_export(
        tenant_id=principal.tenant_id,
        user=principal.user_id or "",
        role=principal.role,
        report=body.report,
        fmt=body.format,
        params=params,
    )
    # audit or nothing: no export is queued unless the request is on record
    await run_in_threadpool(
        lambda: _audit(
            ctx,
            principal,
            "export.requested",
            e.export_id,
            "ok",
            report=e.report,
            format=e.format,
            params=params,
        )
    )
    await run_in_threadpool(ExportRepo(ctx.store).save, e)
    if ctx.settings.api_runs_jobs:  # else a `skillstream jobs` runner claims it
        ctx.exports.submit(e.export_id)
    return ExportAccepted(
        export_id=e.export_id, status=e.status, status_url=f"/v1/exports/{e.export_id}"
    )


def _may_see(p: Principal, e: Any) -> bool:
    if p.role == "platform_admin":
        return True
    if e.tenant_id != p.tenant_id:
        return False
    return e.requested_by == (p.user_id or "") or p.role in ADMIN_ROLES


@router.get("", responses=ERRORS)
async def my_exports(ctx: Ctx, principal: CurrentPrincipal) -> list[dict]:
    rows = await run_in_threadpool(
        ExportRepo(ctx.store).for_user, principal.tenant_id, principal.user_id or ""
    )
    return [e.public() for e in rows]


@router.get("/files/{key:path}", include_in_schema=False)
async def download(ctx: Ctx, key: str, expires: int, sig: str) -> FileResponse:
    """Local object store only: the presigned link's target."""
    objects = ctx.objects
    if not isinstance(objects, LocalObjectStore) or not objects.check(key, expires, sig):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "link invalid or expired")
    export_id = key.rsplit("/", 1)[-1].split(".", 1)[0]
    e = await run_in_threadpool(ExportRepo(ctx.store).get, export_id)
    if e is None or e.status not in LIVE or not objects.exists(key):
        raise HTTPException(status.HTTP_410_GONE, "export expired or removed")
    await run_in_threadpool(
        lambda: audit(
            ctx.store,
            tenant_id=e.tenant_id,
            actor_id="link",
            actor_role="presigned",
            action="export.download",
            resource=f"export:{e.export_id}",
            outcome="ok",
        )
    )
    media = "application/pdf" if e.format == "pdf" else "text/csv"
    return FileResponse(
        objects.path(key), media_type=media, filename=f"{e.report}-{e.export_id}.{e.format}"
    )


@router.get("/{export_id}", responses=ERRORS)
async def export_status(
    ctx: Ctx,
    principal: CurrentPrincipal,
    request: Request,
    export_id: Annotated[str, Path(max_length=64)],
) -> dict:
    """Status; once written, a presigned `download_url` valid until `link_expires_at`."""
    e = await run_in_threadpool(ExportRepo(ctx.store).get, export_id)
    if e is None or not _may_see(principal, e):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such export")
    out = e.public()
    url = await run_in_threadpool(ctx.exports.download_url, e)
    if url and url.startswith("/"):
        url = str(request.base_url).rstrip("/") + url
    out["download_url"] = url
    if url:
        await run_in_threadpool(
            lambda: _audit(ctx, principal, "export.link_issued", e.export_id, "ok")
        )
    return out
