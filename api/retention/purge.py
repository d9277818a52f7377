"""The scheduled purge: delete what is past retention from raw events (and
the xAPI statements they came from), aggregates and exports, never a row
under legal hold, and record what went.

Every delete is ``ALTER TABLE ... DELETE`` with the same WHERE as the count
before it (synchronous mutation), with the holds' predicate negated in it,
so what is counted is what is removed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from api.audit.chain import audit
from api.exports.model import ExportRepo
from api.exports.storage import ObjectStore
from api.reports import summaries
from api.retention.holds import Hold, held_sql, list_holds
from api.retention.policies import UNKNOWN_EVENT_DAYS, effective
from core.settings import Settings
from sinks.store import Store

# table -> (time column, learner column or None)
AGGREGATES = {
    "learner_daily": ("day", "user_id"),
    "learner_scores": ("day", "user_id"),
    "learner_week": ("week", "user_id"),
    "learner_latest": ("last_day", "user_id"),
    "program_weekly": ("week", None),
    "engagement_weeks": ("week", None),
}

# Narrow copies of events the KPIs read, each event's row aged as the event.
READ_MODEL_EVENTS = ("events_by_time", "task_progress", "planner_time", "kpi_events")


def _ms(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@dataclass
class PurgeReport:
    tenant_id: str
    removed: dict[str, int] = field(default_factory=dict)
    kept_on_hold: dict[str, int] = field(default_factory=dict)


@dataclass
class _Deletion:
    """One ``ALTER ... DELETE`` and the count of its very predicate."""

    table: str
    where: str
    params: dict[str, Any]
    rows: int


@dataclass
class _Plan:
    deletions: list[_Deletion] = field(default_factory=list)
    exports: list[Any] = field(default_factory=list)  # Export records to mark purged


def _count(store: Store, table: str, where: str, params: dict[str, Any]) -> int:
    return int(store.query(f"SELECT count() AS n FROM {table} WHERE {where}", params)[0]["n"])


def _planned(store: Store, plan: _Plan, table: str, where: str, params: dict[str, Any]) -> int:
    n = _count(store, table, where, params)
    plan.deletions.append(_Deletion(table, where, params, n))
    return n


def purge_tenant(
    store: Store,
    settings: Settings,
    objects: ObjectStore | None,
    tenant_id: str,
    now: datetime | None = None,
    *,
    actor_id: str = "system",
) -> PurgeReport:
    """Count, audit, then delete (audit or nothing: a purge the audit log
    cannot record does not run)."""
    now = now or datetime.now(UTC)
    rep, plan = PurgeReport(tenant_id), _Plan()
    policy = effective(store, settings, tenant_id)
    holds = list_holds(store, tenant_id)
    _plan_events(store, plan, rep, policy, holds, tenant_id, now)
    _plan_aggregates(store, plan, rep, policy, holds, tenant_id, now)
    _plan_exports(store, plan, rep, policy, holds, tenant_id, now)
    with audit(
        store,
        tenant_id=tenant_id,
        actor_id=actor_id,
        actor_role="system",
        action="retention.purge",
        resource=f"tenant:{tenant_id}",
        outcome="ok",
        detail={"now": _ms(now), "removed": rep.removed, "kept_on_hold": rep.kept_on_hold},
    ):
        _execute(store, objects, plan, tenant_id)
    return rep


def _plan_events(
    store: Store,
    plan: _Plan,
    rep: PurgeReport,
    policy: dict[str, int],
    holds: list[Hold],
    tenant_id: str,
    now: datetime,
) -> None:
    """Raw events: each event type by its own retention."""
    names = sorted(k for k in policy if k not in ("aggregates", "exports"))
    held, hp = held_sql(holds, user_col="learner_id", time_col="event_timestamp")
    base = (
        "tenant_id = {tenant:String} AND event_timestamp < {now:DateTime64(3)}"
        " - toIntervalDay(transform(event_name, {names:Array(String)}, {days:Array(UInt32)},"
        " {dflt:UInt32}))"
    )
    p = {
        "tenant": tenant_id,
        "now": _ms(now),
        "names": names,
        "days": [policy[n] for n in names],
        "dflt": UNKNOWN_EVENT_DAYS,
        **hp,
    }
    rep.kept_on_hold["events"] = _count(
        store, "events", f"{base} AND ({held} OR legal_hold = 1)", p
    )
    rep.removed["events"] = _planned(
        store, plan, "events", f"{base} AND NOT ({held}) AND legal_hold = 0", p
    )
    # the KPIs' read model of the same events (api/reports/kpis.py)
    for table in READ_MODEL_EVENTS:
        rep.removed[table] = _planned(store, plan, table, f"{base} AND NOT ({held})", p)
    # accepted xAPI statements, each aged as the event it became
    xheld, xp = held_sql(holds, user_col="learner_id", time_col="timestamp", prefix="x")
    xbase = base.replace("event_timestamp", "timestamp")
    xq = {**p, **xp}
    rep.kept_on_hold["xapi_statements"] = _count(
        store, "xapi_statements", f"{xbase} AND ({xheld})", xq
    )
    rep.removed["xapi_statements"] = _planned(
        store, plan, "xapi_statements", f"{xbase} AND NOT ({xheld})", xq
    )


def _plan_aggregates(
    store: Store,
    plan: _Plan,
    rep: PurgeReport,
    policy: dict[str, int],
    holds: list[Hold],
    tenant_id: str,
    now: datetime,
) -> None:
    cutoff = (now - timedelta(days=policy["aggregates"])).date().isoformat()
    for table, (tcol, ucol) in AGGREGATES.items():
        held, hp = held_sql(holds, user_col=ucol, time_col=tcol)
        where = f"tenant_id = {{tenant:String}} AND {tcol} < {{cutoff:Date}}"
        q = {"tenant": tenant_id, "cutoff": cutoff, **hp}
        rep.kept_on_hold[table] = _count(store, table, f"{where} AND ({held})", q)
        rep.removed[table] = _planned(store, plan, table, f"{where} AND NOT ({held})", q)


def _plan_exports(
    store: Store,
    plan: _Plan,
    rep: PurgeReport,
    policy: dict[str, int],
    holds: list[Hold],
    tenant_id: str,
    now: datetime,
) -> None:
    """Exports: the record is kept as 'purged' (the audit names it), the file goes."""
    old = ExportRepo(store).where(
        "tenant_id = {t:String} AND status != 'purged' AND created_at < {c:DateTime64(3)}",
        {"t": tenant_id, "c": _ms(now - timedelta(days=policy["exports"]))},
    )
    kept = 0
    for e in old:
        if any(h.covers(user_id=e.requested_by, at=e.created_at) for h in holds):
            kept += 1
        else:
            plan.exports.append(e)
    rep.removed["exports"], rep.kept_on_hold["exports"] = len(plan.exports), kept


def _execute(store: Store, objects: ObjectStore | None, plan: _Plan, tenant_id: str) -> None:
    for d in plan.deletions:
        if d.rows:  # a mutation rewrites parts: only when a row goes
            summaries.delete_rows(store, tenant_id, d.table, d.where, d.params)
    repo = ExportRepo(store)
    for e in plan.exports:
        if objects is not None and e.object_key:
            objects.delete(e.object_key)
        repo.update(e, status="purged")


def tenants_with_data(store: Store) -> list[str]:
    rows = store.query(
        "SELECT tenant_id FROM (SELECT tenant_id FROM tenants"
        " UNION DISTINCT SELECT DISTINCT tenant_id FROM events) ORDER BY tenant_id"
    )
    return [r["tenant_id"] for r in rows]


def cadence(store: Store, settings: Settings, tenant_id: str) -> int:
    rows = store.query(
        "SELECT every_s FROM purge_schedules FINAL WHERE tenant_id = {t:String} AND deleted = 0",
        {"t": tenant_id},
    )
    return int(rows[0]["every_s"]) if rows else int(settings.purge_interval_s)


def set_cadence(
    store: Store, *, tenant_id: str, every_s: int | None, actor_id: str, actor_role: str
) -> None:
    """Per-tenant purge cadence (None: back to ``PURGE_INTERVAL_S``); audited."""
    if every_s is not None and not 60 <= every_s <= 366 * 86400:
        raise ValueError("every_s must be 60 s .. 366 days")
    with audit(
        store,
        tenant_id=tenant_id,
        actor_id=actor_id,
        actor_role=actor_role,
        action="retention.schedule",
        resource=f"tenant:{tenant_id}",
        outcome="ok",
        detail={"every_s": every_s},
    ):
        store.insert(
            "purge_schedules",
            [
                {
                    "tenant_id": tenant_id,
                    "every_s": every_s or 0,
                    "deleted": int(every_s is None),
                    "changed_by": actor_id,
                    "version": time.time_ns(),
                }
            ],
        )


def last_purge(store: Store, tenant_id: str) -> datetime | None:
    """When the tenant's last purge ran, from its audit rows; a purge whose
    last row says it failed counts as not run (the next check retries it)."""
    rows = store.query(
        "SELECT toString(at) AS last, outcome FROM audit_events"
        " WHERE tenant_id = {t:String} AND action = 'retention.purge'"
        " ORDER BY at DESC, seq DESC LIMIT 1",
        {"t": tenant_id},
    )
    if not rows or rows[0]["outcome"] == "failed":
        return None
    return datetime.fromisoformat(rows[0]["last"]).replace(tzinfo=UTC)


def due_tenants(
    store: Store, settings: Settings, now: datetime | None = None, among: list[str] | None = None
) -> list[str]:
    """Tenants whose own cadence has passed since their last purge (the audit
    log says when that was, so a restart neither skips nor repeats one)."""
    now = now or datetime.now(UTC)
    due = []
    for t in tenants_with_data(store) if among is None else among:
        last = last_purge(store, t)
        if last is None or (now - last).total_seconds() >= cadence(store, settings, t):
            due.append(t)
    return due


def purge_due(
    store: Store,
    settings: Settings,
    objects: ObjectStore | None,
    now: datetime | None = None,
    among: list[str] | None = None,
) -> dict[str, dict[str, int]]:
    return {
        t: purge_tenant(store, settings, objects, t, now).removed
        for t in due_tenants(store, settings, now, among)
    }


def purge_all(
    store: Store,
    settings: Settings,
    objects: ObjectStore | None,
    now: datetime | None = None,
    *,
    tenant_id: str | None = None,
    actor_id: str = "system",
) -> list[PurgeReport]:
    tenants = [tenant_id] if tenant_id else tenants_with_data(store)
    return [purge_tenant(store, settings, objects, t, now, actor_id=actor_id) for t in tenants]
