"""The FastAPI application: routes are thin, state lives in ``AppContext``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from api.audit.chain import AuditUnavailable
from api.context import AppContext
from api.cors import BrowserCors
from api.drain import DrainBody
from api.http_metrics import HttpMetrics
from api.routes import (
    admin,
    auth,
    dashboard,
    events,
    exports,
    governance,
    health,
    imports,
    notifications,
    ops,
    org,
    reports,
    sql,
    xapi,
)

DESCRIPTION = """
SkillStream: streaming learning analytics on Kafka and ClickHouse.

* **Ingest**: `POST /v1/events/batch` with a tenant write key; the event dictionary for
  SDKs at `GET /v1/events/dictionary`; CORS for the origins each tenant allowed.
  One event: `POST /v1/events`. xAPI statements (a Learning Record Store's statements
  resource, HTTP Basic with the write key): `/xapi/statements`, `/xapi/about`.
* **Reports**: `GET /v1/reports/{engagement,learners,kpis}`, role-scoped, with a bearer
  token from `skillstream token`; org data at `/v1/org/links`.
* **Exports** (`/v1/exports`), **notifications** (`/v1/notifications`, `/v1/webhooks`),
  **governance** (`/v1/governance/...`: legal holds, retention, erasure, flags, audit).
* **Dashboard**: `GET /` (the "Engagement · last 8 weeks" page).
* **Health**: `GET /health`, Prometheus at `GET /metrics`.
"""


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="SkillStream", version="0.1.0", description=DESCRIPTION)
    app.state.ctx = ctx
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(events.router)
    app.include_router(xapi.router)
    app.include_router(reports.router)
    app.include_router(org.router)
    app.include_router(exports.router)
    app.include_router(imports.router)
    app.include_router(notifications.router)
    app.include_router(governance.router)
    app.include_router(dashboard.router)
    app.include_router(auth.router)
    if ctx.settings.demo_mode:  # `skillstream up --demo` only: otherwise the routes do not exist
        app.include_router(dashboard.demo_router)
    app.include_router(ops.router)
    app.include_router(sql.router)
    app.add_middleware(BrowserCors)
    app.add_middleware(HttpMetrics)
    app.add_middleware(
        DrainBody,
        max_bytes=ctx.settings.http_drain_max_bytes,
        timeout_s=ctx.settings.http_drain_timeout_s,
    )
    app.mount("/static", StaticFiles(directory=dashboard.STATIC), name="static")
    app.add_exception_handler(AuditUnavailable, _audit_unavailable)
    return app


async def _audit_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    # audit or nothing: the change was not made, so retrying is safe
    return JSONResponse(
        {"detail": f"{exc}; nothing was changed, retry later"},
        status_code=503,
        headers={"Retry-After": "5"},
    )
