"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from pydantic import BaseModel, Field

from api.deps import Ctx

router = APIRouter(tags=["health"])
COMPONENT_UP = Gauge(
    "skillstream_component_up",
    "1 while a background thread of this process or a process of the stack runs",
    ["component"],
)


class StageLagOut(BaseModel):
    stage: str = Field(description="`worker` (reads events.raw …) or `sink` (writes ClickHouse).")
    group: str = Field(description="The stage's Kafka consumer group.")
    records: int = Field(description="Records past the group's committed offsets.")
    oldest_age_s: float | None = Field(
        description="Age of the oldest of them, from the event's receipt; null: none waiting."
    )


class Health(BaseModel):
    status: str = Field(
        description="`ok` when Kafka and the store answer and every component runs, "
        "else `degraded`."
    )
    kafka: bool = Field(description="Kafka answered a metadata request.")
    store: bool = Field(description="ClickHouse answered `SELECT 1`.")
    store_kind: str = Field(description="`embedded` (chdb) or `server` (clickhouse-connect).")
    ingest_lag_ms: int | None = Field(
        None, description="now − oldest event accepted but not yet queryable (ms), end to end."
    )
    data_fresh_as_of: str | None = Field(
        None,
        description="Watermark: every event received before it is queryable (ISO 8601 UTC).",
    )
    stages: list[StageLagOut] = Field(
        default_factory=list, description="Lag per stage, read from Kafka (every LAG_POLL_S)."
    )
    components: dict[str, bool] = Field(
        default_factory=dict,
        description="Background threads of the API process (sink, lag_monitor, scheduler) "
        "and the stack's processes (worker, api, demo): running or not.",
    )
    uptime_s: float


@router.get("/health", response_model=Health)
async def health(ctx: Ctx, response: Response) -> Health:
    kafka_ok = await run_in_threadpool(ctx.kafka.ok)
    store_ok = await run_in_threadpool(ctx.store.ping)
    fresh = ctx.data_fresh_as_of()
    snap = ctx.lag.latest if ctx.lag else None
    components = ctx.components()
    lag_ms = snap.end_to_end_ms if snap else (ctx.sink.ingest_lag_ms() if ctx.sink else None)
    return Health(
        status="ok" if kafka_ok and store_ok and all(components.values()) else "degraded",
        kafka=kafka_ok,
        store=store_ok,
        store_kind=ctx.store.kind,
        ingest_lag_ms=lag_ms,
        data_fresh_as_of=fresh.isoformat() if fresh else None,
        stages=[
            StageLagOut(
                stage=s.stage,
                group=s.group,
                records=s.records,
                oldest_age_s=s.age_s(snap.read_at) if snap else None,
            )
            for s in (snap.stages if snap else [])
        ],  # fmt: skip
        components=components,
        uptime_s=round(time.time() - ctx.started_at, 3),
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(ctx: Ctx) -> Response:
    for name, alive in ctx.components().items():
        COMPONENT_UP.labels(name).set(1 if alive else 0)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
