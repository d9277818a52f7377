"""The FastAPI application: routes are thin, state lives in ``AppContext``."""

from __future__ import annotations

from fastapi import FastAPI

from api.context import AppContext
from api.routes import admin, events, health

DESCRIPTION = """
SkillStream: streaming learning analytics on Kafka and ClickHouse.

* **Ingest**: `POST /v1/events/batch` with a tenant write key.
* **Reports**: role-scoped, with a bearer token from `skillstream token`.
* **Health**: `GET /health`, Prometheus at `GET /metrics`.
"""


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="SkillStream", version="0.1.0", description=DESCRIPTION)
    app.state.ctx = ctx
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(events.router)
    return app
