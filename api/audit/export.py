"""Audit rows for the auditors' CSV export: a tenant's chains (one per
writer, api/audit/chain.py), each in seq order,
narrowed to a time range, each flagged ``legal_hold`` when a hold covers it
(tenant hold; a user hold on its actor or target; a range hold on its time)
or when it records a hold itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from api.retention.holds import Hold, list_holds
from sinks.store import Store


def _target_user(resource: str) -> str:
    # resources name their target last: "manager:m1->u7", "user:u7", "u7"
    return resource.rsplit(">", 1)[-1].rsplit(":", 1)[-1]


def is_held(row: dict[str, Any], holds: list[Hold]) -> bool:
    if row["action"].startswith("legal_hold."):
        return True
    at = datetime.fromisoformat(row["at"]).replace(tzinfo=UTC)
    target = _target_user(row["resource"])
    return any(
        h.covers(user_id=row["actor_id"], at=at) or h.covers(user_id=target, at=at) for h in holds
    )


def _ms(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def audit_rows(
    store: Store,
    tenant_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    legal_hold: bool | None = None,
    chunk: int = 20_000,
) -> Iterator[dict[str, Any]]:
    holds = list_holds(store, tenant_id)
    writer, after = "", 0
    while True:
        got = store.query(
            "SELECT seq, toString(at) AS at_s, tenant_id, writer, actor_id, actor_role, action,"
            " resource, outcome, detail, prev_hash, hash FROM audit_events"
            " WHERE tenant_id = {t:String} AND (writer, seq) > ({w:String}, {after:UInt64})"
            " AND at >= {since:DateTime64(3)} AND at < {until:DateTime64(3)}"
            " ORDER BY writer, seq LIMIT {n:UInt32}",
            {
                "t": tenant_id,
                "w": writer,
                "after": after,
                "since": _ms(since or datetime(1970, 1, 1, tzinfo=UTC)),
                "until": _ms(until or datetime(2200, 1, 1, tzinfo=UTC)),
                "n": chunk,
            },
        )
        for r in got:
            r["at"] = r.pop("at_s")
            r["legal_hold"] = is_held(r, holds)
            if legal_hold is None or r["legal_hold"] == legal_hold:
                yield r
        if len(got) < chunk:
            return
        writer, after = got[-1]["writer"], int(got[-1]["seq"])
