"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from api.deps import Ctx

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(description="`ok` when Kafka and the store answer, else `degraded`.")
    kafka: bool = Field(description="Kafka answered a metadata request.")
    store: bool = Field(description="ClickHouse answered `SELECT 1`.")
    store_kind: str = Field(description="`embedded` (chdb) or `server` (clickhouse-connect).")
    ingest_lag_ms: int | None = Field(
        None, description="now − oldest event accepted but not yet queryable (ms)."
    )
    data_fresh_as_of: str | None = Field(
        None, description="Newest received_at that is queryable (ISO 8601 UTC)."
    )
    uptime_s: float


@router.get("/health", response_model=Health)
async def health(ctx: Ctx, response: Response) -> Health:
    kafka_ok = await run_in_threadpool(ctx.kafka.ok)
    store_ok = await run_in_threadpool(ctx.store.ping)
    fresh = ctx.sink.data_fresh_as_of() if ctx.sink else None
    return Health(
        status="ok" if kafka_ok and store_ok else "degraded",
        kafka=kafka_ok,
        store=store_ok,
        store_kind=ctx.store.kind,
        ingest_lag_ms=ctx.sink.ingest_lag_ms() if ctx.sink else None,
        data_fresh_as_of=fresh.isoformat() if fresh else None,
        uptime_s=round(time.time() - ctx.started_at, 3),
    )


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
