"""Deletion requests (right to erasure) for one user: raw events (identified
and the anonymous visits linked to them), accepted xAPI statements (the same
way), identity links, aggregates, opt-out state, notification data and the
files the user exported — unless a legal hold covers any of it, then the
whole request is refused with the reason. Either way the request and its
outcome are recorded and audited.

The stream worker's own state goes through Kafka: ``publish`` hands the
request to it first (streams/erasure.py: its tables, their changelogs and
the compacted topics keyed by the learner), so a request Kafka did not take
deletes nothing and can be sent again. Kafka topics that are not compacted
(raw and clean events) age out with their retention; see
docs/governance.md, Legal hold and retention.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from api.audit.chain import audit
from api.exports.model import ExportRepo
from api.exports.storage import ObjectStore
from api.reports import summaries
from api.retention.holds import held_sql, list_holds
from sinks.store import Store


@dataclass
class Erasure:
    request_id: str
    tenant_id: str
    user_id: str
    status: str  # completed | refused, then settled (the second pass)
    reason: str = ""
    removed: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _n(store: Store, sql: str, p: dict[str, Any]) -> int:
    return int(store.query(f"SELECT count() AS n FROM {sql}", p)[0]["n"])


def _why_held(store: Store, tenant_id: str, user_id: str) -> str:
    holds = list_holds(store, tenant_id)
    for h in holds:
        if h.kind == "tenant":
            return f"tenant under legal hold {h.hold_id}: {h.reason}"
        if h.kind == "user" and h.user_id == user_id:
            return f"user under legal hold {h.hold_id}: {h.reason}"
    ranges = [h for h in holds if h.kind == "range"]
    if ranges:
        sql, p = held_sql(ranges, user_col=None, time_col="event_timestamp")
        n = _n(
            store,
            f"events WHERE tenant_id = {{t:String}} AND learner_id = {{u:String}} AND ({sql})",
            {"t": tenant_id, "u": user_id, **p},
        )
        if n:
            ids = ", ".join(h.hold_id for h in ranges)
            return f"{n} of the user's events fall in legal-hold time ranges ({ids})"
    return ""


# Each table's rows of one user; events and xapi_statements first: their
# condition reads identity_links.
_ANON = (
    "anonymous_id IN (SELECT anonymous_id FROM identity_links"
    " WHERE tenant_id = {t:String} AND user_id = {u:String})"
)
_USER = "tenant_id = {t:String} AND user_id = {u:String}"
TARGETS = {
    "events": "tenant_id = {t:String} AND (learner_id = {u:String} OR user_id = {u:String} OR "
    + _ANON
    + ")",
    # accepted xAPI statements (api/xapi/store.py): the actor's account name
    # is the learner id; an mbox/openid actor is found by its visitor id
    "xapi_statements": "tenant_id = {t:String} AND (learner_id = {u:String} OR " + _ANON + ")",
    "identity_links": _USER,
    "learner_daily": _USER,
    "learner_scores": _USER,
    "learner_week": _USER,
    "learner_latest": _USER,
    "learner_firsts": _USER,
    "events_by_time": "tenant_id = {t:String} AND learner_id = {u:String}",
    "learner_event_firsts": "tenant_id = {t:String} AND learner_id = {u:String}",
    "task_progress": "tenant_id = {t:String} AND learner_id = {u:String}",
    "planner_time": "tenant_id = {t:String} AND learner_id = {u:String}",
    "kpi_events": "tenant_id = {t:String} AND learner_id = {u:String}",
    "optout_state": _USER,
    "notifications": _USER,
    "notification_prefs": _USER,
}

Publish = Callable[[str, str, str], None]  # (tenant, user, request id) to the stream worker


def erase_user(
    store: Store,
    objects: ObjectStore | None,
    *,
    tenant_id: str,
    user_id: str,
    actor_id: str,
    actor_role: str,
    publish: Publish | None = None,
) -> Erasure:
    """Audit or nothing: the audit row (with what matched) goes first; if it
    cannot be written, nothing is deleted."""
    req = Erasure("dr_" + uuid.uuid4().hex[:12], tenant_id, user_id, "completed")
    row = {"tenant_id": tenant_id, "actor_id": actor_id, "actor_role": actor_role,
           "action": "erasure.request", "resource": f"user:{user_id}"}  # fmt: skip
    req.reason = _why_held(store, tenant_id, user_id)
    if req.reason:
        req.status = "refused"
        _record(store, req, actor_id, datetime.now(UTC))
        audit(store, **row, outcome="refused",
              detail={"request_id": req.request_id, "reason": req.reason})  # fmt: skip
        return req
    req.removed = _count_rows(store, tenant_id, user_id)
    req.removed["export_files"] = len(_live_exports(store, tenant_id, user_id))
    with audit(store, **row, outcome="ok",
               detail={"request_id": req.request_id, "removed": req.removed}):  # fmt: skip
        if publish is not None:
            publish(tenant_id, user_id, req.request_id)
        _delete_rows(store, tenant_id, user_id, req.removed)
        _purge_exports(store, objects, tenant_id, user_id)
        _record(store, req, actor_id, datetime.now(UTC))
    return req


def settle_erasures(
    store: Store, publish: Publish | None, settle_s: float, now: datetime | None = None
) -> int:
    """The second pass of every erasure completed ``settle_s`` ago: events of
    the user accepted before the request may still have been in the worker
    or the sink then, and landed after it. Once they have (the settle time
    is well above the pipeline's lag), the worker gets the request again
    and the same rows are deleted again; the request becomes ``settled``."""
    now = now or datetime.now(UTC)
    due = store.query(
        "SELECT request_id, tenant_id, user_id, requested_by, created_at"
        " FROM deletion_requests FINAL WHERE status = 'completed'"
        " AND created_at <= {cut:DateTime64(3, 'UTC')}",
        {"cut": (now - timedelta(seconds=settle_s)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]},
    )
    for due_row in due:
        _settle(store, publish, due_row)
    return len(due)


def _settle(store: Store, publish: Publish | None, due: dict[str, Any]) -> None:
    req = Erasure(due["request_id"], due["tenant_id"], due["user_id"], "settled")
    created = datetime.fromisoformat(str(due["created_at"]).replace(" ", "T")).replace(tzinfo=UTC)
    row = {"tenant_id": req.tenant_id, "actor_id": "system", "actor_role": "system",
           "action": "erasure.settle", "resource": f"user:{req.user_id}"}  # fmt: skip
    req.reason = _why_held(store, req.tenant_id, req.user_id)  # a hold placed since
    if req.reason:
        _record(store, req, due["requested_by"], created)
        audit(store, **row, outcome="refused",
              detail={"request_id": req.request_id, "reason": req.reason})  # fmt: skip
        return
    req.removed = _count_rows(store, req.tenant_id, req.user_id)
    with audit(store, **row, outcome="ok",
               detail={"request_id": req.request_id, "removed": req.removed}):  # fmt: skip
        if publish is not None:
            publish(req.tenant_id, req.user_id, req.request_id)
        _delete_rows(store, req.tenant_id, req.user_id, req.removed)
        _record(store, req, due["requested_by"], created)


def _count_rows(store: Store, tenant_id: str, user_id: str) -> dict[str, int]:
    p = {"t": tenant_id, "u": user_id}
    return {table: _n(store, f"{table} WHERE {where}", p) for table, where in TARGETS.items()}


def _delete_rows(store: Store, tenant_id: str, user_id: str, counted: dict[str, int]) -> None:
    # in TARGETS' order: the events' condition reads identity_links
    for table, where in TARGETS.items():
        if counted.get(table):
            summaries.delete_rows(store, tenant_id, table, where, {"t": tenant_id, "u": user_id})


def _live_exports(store: Store, tenant_id: str, user_id: str) -> list[Any]:
    return ExportRepo(store).where(
        "tenant_id = {t:String} AND requested_by = {u:String} AND status != 'purged'",
        {"t": tenant_id, "u": user_id},
    )


def _purge_exports(store: Store, objects: ObjectStore | None, tenant_id: str, user_id: str) -> None:
    repo = ExportRepo(store)
    for e in _live_exports(store, tenant_id, user_id):
        if objects is not None and e.object_key:
            objects.delete(e.object_key)
        repo.update(e, status="purged")


def _record(store: Store, req: Erasure, requested_by: str, created_at: datetime) -> None:
    store.insert(
        "deletion_requests",
        [
            {
                "request_id": req.request_id,
                "tenant_id": req.tenant_id,
                "user_id": req.user_id,
                "requested_by": requested_by,
                "status": req.status,
                "reason": req.reason,
                "removed": json.dumps(req.removed, sort_keys=True),
                "created_at": created_at,
                "version": time.time_ns(),
            }
        ],
    )
