"""Analysts' SQL: ``POST /v1/sql`` (platform_admin: every tenant; analyst:
its token's tenant only). The checks and limits live in api/analyst.py."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api import analyst
from api.audit.chain import audit
from api.deps import Ctx, CurrentPrincipal
from api.security import Principal
from sinks.store import StoreError

router = APIRouter(prefix="/v1", tags=["sql"])


class SqlRequest(BaseModel):
    sql: str = Field(max_length=100_000, description="One SELECT over the analytics tables.")
    format: Literal["json", "csv", "parquet"] = "json"


def sql_caller(principal: CurrentPrincipal) -> Principal:
    if "sql" not in principal.capabilities:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "SQL is for platform admins and analysts")
    return principal


SqlCaller = Annotated[Principal, Depends(sql_caller)]


@router.post(
    "/sql",
    summary="Run a read-only SELECT (json: one object per line; csv; parquet)",
    responses={400: {"description": "Refused or failed; `detail` says why."}},
)
async def run_sql(ctx: Ctx, principal: SqlCaller, body: SqlRequest) -> Response:
    """Read-only (ClickHouse `readonly = 1`), at most `SQL_MAX_ROWS` rows and
    `SQL_MAX_SECONDS`; an analyst sees its own tenant's rows only, whatever
    the query. Audited."""
    tenant = None if principal.role == "platform_admin" else principal.tenant_id
    s = ctx.settings
    try:
        out = await run_in_threadpool(
            lambda: analyst.run(ctx.store, body.sql, tenant_id=tenant, fmt=body.format,
                                max_rows=s.sql_max_rows, max_seconds=s.sql_max_seconds)
        )  # fmt: skip
    except (analyst.SqlRefused, StoreError) as exc:
        _audit(ctx, principal, body, "refused", str(exc)[:300])
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)[:1000]) from exc
    _audit(ctx, principal, body, "ok", "")
    return Response(out.body, media_type=out.content_type)


def _audit(ctx, principal: Principal, body: SqlRequest, outcome: str, error: str) -> None:
    detail = {"sql": body.sql[:2000], "format": body.format, "error": error}
    audit(ctx.store, principal=principal, action="sql.query", resource="sql", outcome=outcome,
          detail={k: v for k, v in detail.items() if v})  # fmt: skip
