"""What every report uses: its queries run together, the data's freshness,
a tile with its change, timestamps as ISO text, the packed latest score row's
fields, and the description of the scope a response covers.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.reports.scope import Scope
from sinks.store import SESSIONS, Store

FreshFn = Callable[[str | None], datetime | None]

# A latest score row packed in one UInt128 (sinks/migrations/0014): its fields.
LATEST = {
    "day": "toDate(toUInt16(bitShiftRight({c}, 112)))",
    "score": "toUInt8(bitAnd(bitShiftRight({c}, 40), 255))",
    "at_risk": "toUInt8(bitAnd(bitShiftRight({c}, 32), 255))",
    "days_inactive": "toUInt16(bitAnd(bitShiftRight({c}, 16), 65535))",
}


def latest_fields(col: str) -> dict[str, str]:
    """SQL for each field of the packed latest row in column ``col``."""
    return {k: v.format(c=col) for k, v in LATEST.items()}


# A report's independent queries run at once: the store's sessions overlap
# them (sinks/store.py), so a report costs about its longest chain of
# queries, not their sum.
_QUERIES = ThreadPoolExecutor(max_workers=2 * SESSIONS, thread_name_prefix="report-query")


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Each call's result, in order, the calls run concurrently: the first
    in this thread, the others on the pool. A call the pool has not started
    by the time this thread is free runs here instead, so a report never
    waits behind other reports' queued queries, and a call that itself calls
    ``together`` only ever waits on calls already running."""
    futures = [_QUERIES.submit(call) for call in calls[1:]]
    try:
        first = calls[0]()
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    rest = [call() if future.cancel() else future.result()
            for call, future in zip(calls[1:], futures, strict=True)]  # fmt: skip
    return [first, *rest]


def iso(d: datetime | None) -> str | None:
    return d.astimezone(UTC).isoformat().replace("+00:00", "Z") if d else None


def tile(value: float | int | None, previous: float | int | None, pct: bool = True) -> dict:
    """A dashboard tile: the value, the previous period's and the change."""
    delta = None if value is None or previous is None else round(value - previous, 4)
    out: dict[str, Any] = {"value": value, "previous": previous, "delta": delta}
    if pct:
        out["delta_pct"] = (
            round(100 * (value - previous) / previous, 1)
            if value is not None and previous not in (None, 0)
            else None
        )
    return out


FRESHNESS = """
    SELECT toUnixTimestamp64Milli(max(received_at)) AS ms, count() AS n
    FROM tenant_freshness WHERE {tenant}
"""


@dataclass(frozen=True)
class Known:
    """A freshness read before a computation's queries ran: what its answer
    states, so the data it shows are never older than it says (a round
    written while the queries run only makes them newer)."""

    at: datetime | None

    def __call__(self, _tenant: str | None) -> datetime | None:
        return self.at


def freshness(store: Store, scope: Scope, sink_fresh: FreshFn | None = None) -> datetime | None:
    """Newest received_at that is queryable for the scope's tenant (or any)."""
    if isinstance(sink_fresh, Known):
        return sink_fresh.at
    if sink_fresh is not None:
        got = sink_fresh(scope.tenant_id)
        if got is not None:
            return got
    t = scope.tenant_filter()
    rows = store.query(FRESHNESS.format(tenant=t.sql), t.params)
    if not rows or not int(rows[0]["n"]):
        return None
    return datetime.fromtimestamp(int(rows[0]["ms"]) / 1000, UTC)


def describe(scope: Scope) -> dict[str, Any]:
    """What the response covers, so a screen or file can say it."""
    return {
        "role": scope.role,
        "tenant_id": scope.tenant_id,
        "learners": None if scope.learners is None else len(scope.learners),
        "programs": None if scope.programs is None else list(scope.programs),
        "program_id": scope.program_id,
        "cohort_id": scope.cohort_id,
        "user_id": scope.user_id,
        "aggregated_only": not scope.per_learner,
    }
