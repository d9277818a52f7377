"""`GET /v1/ops/lag`: the pipeline's lag per stage over the last hour, for
platform admins (the dashboard's ops view draws it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.deps import Ctx, CurrentPrincipal

router = APIRouter(prefix="/v1/ops", tags=["ops"])


@router.get("/lag", summary="Lag per stage over the last minutes (platform admins)")
async def lag(
    ctx: Ctx,
    principal: CurrentPrincipal,
    minutes: Annotated[int, Query(ge=1, le=60)] = 60,
) -> dict:
    """One point per lag reading (every `LAG_POLL_S`): per stage, the records
    waiting and the age of the oldest (s, from the event's receipt); and the
    freshness watermark."""
    if principal.role != "platform_admin":
        raise HTTPException(403, "the ops view is for platform admins")
    history = list(ctx.lag.history) if ctx.lag else []
    since = datetime.now(UTC).timestamp() - minutes * 60
    points = [
        {
            "t": snap.read_at,
            "watermark": snap.watermark_ms / 1000,
            "stages": {
                s.stage: {"records": s.records, "age_s": s.age_s(snap.read_at) or 0.0}
                for s in snap.stages
            },
        }
        for snap in history
        if snap.read_at >= since
    ]
    return {"interval_s": ctx.settings.lag_poll_s, "points": points}
