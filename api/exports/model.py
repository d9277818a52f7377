"""The export job record (``exports`` table): one row per state change.

queued -> running -> written (file stored, link minted) -> done (notified)
                  \\-> failed
written/done -> expired (link lapsed: object deleted) ; any -> purged (retention)
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sinks.store import Store

LIVE = ("written", "done")  # a file exists and the link may be used
PENDING = ("queued", "running", "written")  # the runner still owes work


@dataclass(frozen=True)
class Export:
    export_id: str
    tenant_id: str
    requested_by: str
    requested_role: str
    report: str
    format: str
    params: dict[str, Any]
    status: str = "queued"
    object_key: str = ""
    rows: int = 0
    bytes: int = 0
    error: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    link_expires_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("created_at", "finished_at", "link_expires_at"):
            d[k] = d[k].isoformat().replace("+00:00", "Z") if d[k] else None
        d.pop("object_key")
        return d


def new_export(
    *, tenant_id: str, user: str, role: str, report: str, fmt: str, params: dict[str, Any]
) -> Export:
    return Export("ex_" + uuid.uuid4().hex[:16], tenant_id, user, role, report, fmt, params)


def _dt(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v).replace(tzinfo=UTC) if v else None


_COLS = (
    "export_id, tenant_id, requested_by, requested_role, report, format, params, status,"
    " object_key, rows, bytes, error, toString(created_at) AS created_s,"
    " toString(finished_at) AS finished_s, toString(link_expires_at) AS expires_s"
)


def _from_row(r: dict[str, Any]) -> Export:
    return Export(
        r["export_id"],
        r["tenant_id"],
        r["requested_by"],
        r["requested_role"],
        r["report"],
        r["format"],
        json.loads(r["params"] or "{}"),
        r["status"],
        r["object_key"],
        int(r["rows"]),
        int(r["bytes"]),
        r["error"],
        _dt(r["created_s"]) or datetime.now(UTC),
        _dt(r["finished_s"]),
        _dt(r["expires_s"]),
    )


class ExportRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    def save(self, e: Export) -> Export:
        row = asdict(e)
        row["params"] = json.dumps(e.params, sort_keys=True, default=str)
        row["version"] = time.time_ns()
        self.store.insert("exports", [row])
        return e

    def update(self, e: Export, **changes: Any) -> Export:
        return self.save(replace(e, **changes))

    def get(self, export_id: str) -> Export | None:
        rows = self.store.query(
            f"SELECT {_COLS} FROM exports FINAL WHERE export_id = {{id:String}}",
            {"id": export_id},
        )
        return _from_row(rows[0]) if rows else None

    def where(
        self, cond: str, params: dict[str, Any] | None = None, limit: int = 10_000
    ) -> list[Export]:
        rows = self.store.query(
            f"SELECT {_COLS} FROM exports FINAL WHERE {cond}"
            " ORDER BY created_at DESC LIMIT {lim:UInt32}",
            {**(params or {}), "lim": limit},
        )
        return [_from_row(r) for r in rows]

    def pending(self) -> list[Export]:
        return self.where("status IN {s:Array(String)}", {"s": list(PENDING)})

    def for_user(self, tenant_id: str, user: str, limit: int = 50) -> list[Export]:
        return self.where(
            "tenant_id = {t:String} AND requested_by = {u:String}",
            {"t": tenant_id, "u": user},
            limit,
        )

    def lapsed(self, now: datetime) -> list[Export]:
        return self.where(
            "status IN {s:Array(String)} AND link_expires_at IS NOT NULL"
            " AND link_expires_at <= {now:DateTime64(3)}",
            {"s": list(LIVE), "now": now.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]},
        )
