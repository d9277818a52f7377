"""Legal holds on a tenant, a user, or an event-time range.

A hold is a row in ``legal_holds``; releasing writes a newer version. The
holds of a tenant become one SQL predicate (``held_sql``) that the purge and
erasure put in front of every delete, and the ``events.legal_hold`` flag is
kept in step (``sync_event_flags``) so the table's own TTL never takes a held
row either.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.audit.chain import audit
from api.timebounds import storable
from sinks.store import Store

KINDS = ("tenant", "user", "range")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")


class HoldError(ValueError):
    pass


@dataclass(frozen=True)
class Hold:
    hold_id: str
    tenant_id: str
    kind: str
    user_id: str
    from_ts: datetime
    to_ts: datetime
    reason: str
    created_by: str
    created_at: datetime
    released: bool = False

    def covers(self, *, user_id: str | None, at: datetime | None) -> bool:
        if self.kind == "tenant":
            return True
        if self.kind == "user":
            return bool(user_id) and user_id == self.user_id
        return at is not None and self.from_ts <= at < self.to_ts

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("from_ts", "to_ts", "created_at"):
            d[k] = d[k].isoformat().replace("+00:00", "Z")
        return d


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _ms(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def list_holds(store: Store, tenant_id: str, *, include_released: bool = False) -> list[Hold]:
    rows = store.query(
        "SELECT hold_id, tenant_id, kind, user_id, toString(from_ts) AS f, toString(to_ts) AS t,"
        " reason, created_by, toString(created_at) AS c, released FROM legal_holds FINAL"
        " WHERE tenant_id = {t:String} AND ({all:UInt8} = 1 OR released = 0)"
        " ORDER BY created_at, hold_id",
        {"t": tenant_id, "all": int(include_released)},
    )
    return [
        Hold(
            r["hold_id"],
            r["tenant_id"],
            r["kind"],
            r["user_id"],
            _dt(r["f"]),
            _dt(r["t"]),
            r["reason"],
            r["created_by"],
            _dt(r["c"]),
            bool(r["released"]),
        )
        for r in rows
    ]


def held_sql(
    holds: list[Hold], *, user_col: str | None, time_col: str | None, prefix: str = "h"
) -> tuple[str, dict[str, Any]]:
    """A SQL condition true for rows under any of ``holds`` (``0`` if none).
    ``user_col``/``time_col`` name the row's learner and time columns (None: the
    table has no such column, so holds of that kind cannot be told apart and
    cover the row conservatively)."""
    conds: list[str] = []
    params: dict[str, Any] = {}
    users = sorted({h.user_id for h in holds if h.kind == "user"})
    if any(h.kind == "tenant" for h in holds):
        return "1", {}
    if users:
        if user_col is None:
            return "1", {}
        conds.append(f"ifNull({user_col}, '') IN {{{prefix}_users:Array(String)}}")
        params[f"{prefix}_users"] = users
    for i, h in enumerate(h for h in holds if h.kind == "range"):
        if time_col is None:
            return "1", {}
        conds.append(
            f"({time_col} >= {{{prefix}_f{i}:DateTime64(3)}}"
            f" AND {time_col} < {{{prefix}_t{i}:DateTime64(3)}})"
        )
        params[f"{prefix}_f{i}"] = _ms(h.from_ts)
        params[f"{prefix}_t{i}"] = _ms(h.to_ts)
    return (" OR ".join(conds) if conds else "0"), params


def sync_event_flags(store: Store, tenant_id: str) -> None:
    """Set ``events.legal_hold`` to exactly the tenant's active holds, so the
    table TTL (``WHERE legal_hold = 0``) agrees with the purge."""
    sql, params = held_sql(
        list_holds(store, tenant_id), user_col="learner_id", time_col="event_timestamp"
    )
    where = "tenant_id = {tenant:String} AND legal_hold != toUInt8(" + sql + ")"
    p = {"tenant": tenant_id, **params}
    # a mutation rewrites parts: only start one when a flag is wrong
    if int(store.query(f"SELECT count() AS n FROM events WHERE {where}", p)[0]["n"]):
        store.command(
            f"ALTER TABLE events UPDATE legal_hold = toUInt8({sql})"
            f" WHERE {where} SETTINGS mutations_sync = 1",
            p,
        )


def place_hold(
    store: Store,
    *,
    tenant_id: str,
    kind: str,
    user_id: str | None,
    from_ts: datetime | None,
    to_ts: datetime | None,
    reason: str,
    actor_id: str,
    actor_role: str,
) -> Hold:
    if kind not in KINDS:
        raise HoldError(f"kind must be one of {', '.join(KINDS)}")
    if not reason.strip():
        raise HoldError("a legal hold needs a reason")
    if kind == "user" and not (user_id and _ID.match(user_id)):
        raise HoldError("a user hold needs a valid user_id")
    try:
        from_ts, to_ts = storable("from_ts", from_ts), storable("to_ts", to_ts)
    except ValueError as exc:
        raise HoldError(str(exc)) from exc
    if kind == "range" and not (from_ts and to_ts and from_ts < to_ts):
        raise HoldError("a range hold needs from_ts < to_ts")
    now = datetime.now(UTC)
    hold = Hold(
        hold_id="lh_" + uuid.uuid4().hex[:12],
        tenant_id=tenant_id,
        kind=kind,
        user_id=(user_id or "") if kind == "user" else "",
        from_ts=(from_ts or EPOCH).astimezone(UTC) if kind == "range" else EPOCH,
        to_ts=(to_ts or EPOCH).astimezone(UTC) if kind == "range" else EPOCH,
        reason=reason.strip(),
        created_by=actor_id,
        created_at=now,
    )
    with audit(
        store,
        tenant_id=tenant_id,
        actor_id=actor_id,
        actor_role=actor_role,
        action="legal_hold.place",
        resource=f"legal_hold:{hold.hold_id}",
        outcome="ok",
        detail=hold.as_dict(),
    ):
        _write(store, hold)
        sync_event_flags(store, tenant_id)
    return hold


def release_hold(
    store: Store, *, tenant_id: str, hold_id: str, actor_id: str, actor_role: str
) -> Hold:
    found = [h for h in list_holds(store, tenant_id) if h.hold_id == hold_id]
    if not found:
        raise HoldError(f"no active hold {hold_id!r} in this tenant")
    hold = Hold(**{**found[0].__dict__, "released": True})
    with audit(
        store,
        tenant_id=tenant_id,
        actor_id=actor_id,
        actor_role=actor_role,
        action="legal_hold.release",
        resource=f"legal_hold:{hold_id}",
        outcome="ok",
        detail=hold.as_dict(),
    ):
        _write(store, hold, released_at=datetime.now(UTC))
        sync_event_flags(store, tenant_id)
    return hold


def _write(store: Store, h: Hold, released_at: datetime | None = None) -> None:
    store.insert(
        "legal_holds",
        [
            {
                "hold_id": h.hold_id,
                "tenant_id": h.tenant_id,
                "kind": h.kind,
                "user_id": h.user_id,
                "from_ts": h.from_ts,
                "to_ts": h.to_ts,
                "reason": h.reason,
                "created_by": h.created_by,
                "created_at": h.created_at,
                "released": int(h.released),
                "released_at": released_at,
                "version": time.time_ns(),
            }
        ],
    )
