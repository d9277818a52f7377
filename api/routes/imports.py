"""Historical imports over HTTP (docs/ingestion.md, "Historical import"):
a company admin (its tenant) or a platform admin (any tenant) starts one
from an object-store prefix or an uploaded file, and follows it with the
counts and progress `skillstream import` prints. Audited."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.audit.chain import audit
from api.deps import Ctx, CurrentPrincipal
from api.imports import service
from api.imports.run import Target
from api.imports.sources import SourceError
from api.imports.state import ImportBusy
from api.security import Principal

router = APIRouter(prefix="/v1/imports", tags=["imports"])
ROLES = ("company_admin", "platform_admin")
Format = Literal["ndjson", "csv", "parquet"]


class ImportRequest(BaseModel):
    source: str = Field(description="s3://bucket/prefix on the configured object store.")
    format: Format | None = Field(None, description="Default: by each file's extension.")
    tenant_id: str | None = Field(None, description="platform_admin only: the tenant.")


class ImportStarted(BaseModel):
    import_id: str
    status: str
    status_url: str


def _tenant_for(ctx: Any, p: Principal, tenant_id: str | None) -> Target:
    if p.role not in ROLES:
        raise HTTPException(403, "imports need a company_admin or platform_admin")
    tid = tenant_id or p.tenant_id
    if tid != p.tenant_id and p.role != "platform_admin":
        raise HTTPException(403, "tenant outside this token's tenant")
    tenant = ctx.tenants.by_id(tid)
    if tenant is None:
        raise HTTPException(404, "no such tenant")
    return Target(tenant.tenant_id, tenant.name, tenant.pii_salt)


async def _start(ctx: Any, p: Principal, target: Target, source: str, fmt: str | None):
    try:
        st = await run_in_threadpool(
            service.start, ctx.settings, ctx.kafka_bootstrap, target, source, fmt
        )
    except SourceError as exc:
        raise HTTPException(422, str(exc)[:1000]) from exc
    except ImportBusy as exc:
        raise HTTPException(409, str(exc)) from exc
    await run_in_threadpool(
        lambda: audit(
            ctx.store,
            principal=p,
            action="import.requested",
            resource=f"import:{st.import_id}",
            outcome="ok",
            detail={"source": source[:500], "tenant_id": target.tenant_id},
        )  # fmt: skip
    )
    return ImportStarted(
        import_id=st.import_id, status=st.status, status_url=f"/v1/imports/{st.import_id}"
    )


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=ImportStarted)
async def start_import(body: ImportRequest, ctx: Ctx, principal: CurrentPrincipal):
    """Import the files under an object-store prefix (NDJSON, CSV, Parquet;
    gzip too). The same files imported again add nothing (the finished
    import is answered)."""
    target = _tenant_for(ctx, principal, body.tenant_id)
    if not body.source.startswith("s3://"):
        raise HTTPException(422, "source: an s3://bucket/prefix (or upload the file)")
    return await _start(ctx, principal, target, body.source, body.format)


SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@router.post("/upload", status_code=status.HTTP_202_ACCEPTED, response_model=ImportStarted)
async def upload_import(
    request: Request,
    ctx: Ctx,
    principal: CurrentPrincipal,
    filename: Annotated[str, Query(max_length=200, description="e.g. history.ndjson.gz")],
    format: Annotated[Format | None, Query()] = None,
    tenant_id: Annotated[str | None, Query()] = None,
):
    """Import the request body: one file, named by ``filename`` (its
    extension gives the format unless ``format`` says)."""
    target = _tenant_for(ctx, principal, tenant_id)
    folder = ctx.settings.run_dir / "imports" / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex[:12]}-{SAFE_NAME.sub('_', filename)[-120:]}"
    with open(path, "wb") as f:
        async for chunk in request.stream():
            f.write(chunk)
    return await _start(ctx, principal, target, str(path), format)


def _visible(p: Principal, st: Any) -> bool:
    return p.role == "platform_admin" or (p.role in ROLES and st.tenant_id == p.tenant_id)


@router.get("")
async def list_imports(
    ctx: Ctx,
    principal: CurrentPrincipal,
    status_: Annotated[
        Literal["running", "done", "failed", "interrupted"] | None, Query(alias="status")
    ] = None,
) -> list[dict[str, Any]]:
    """The caller's tenant's imports (a platform admin: every tenant's),
    newest first; ``status=running``: those not finished or stopped."""
    if principal.role not in ROLES:
        raise HTTPException(403, "imports need a company_admin or platform_admin")
    tid = None if principal.role == "platform_admin" else principal.tenant_id
    out = []
    for st in await run_in_threadpool(service.states(ctx.settings).all, tid):
        running = st.status not in ("done", "failed", "interrupted")
        if status_ is None or status_ == st.status or (status_ == "running" and running):
            out.append(st.public())
    return out[:100]


@router.get("/{import_id}")
async def get_import(import_id: str, ctx: Ctx, principal: CurrentPrincipal) -> dict[str, Any]:
    """Counts (read, accepted, duplicates, rejected by reason), progress,
    events/s and ETA of one import."""
    try:
        st = service.states(ctx.settings).load(import_id)
    except KeyError:
        st = None
    if st is None or not _visible(principal, st):
        raise HTTPException(404, "no such import")
    return st.public()
