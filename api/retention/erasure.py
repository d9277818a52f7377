"""Deletion requests (right to erasure) for one user: raw events (identified
and the anonymous visits linked to them), identity links, aggregates,
opt-out state, notification data and the files the user exported — unless a
legal hold covers any of it, then the whole request is refused with the
reason. Either way the request and its outcome are recorded and audited.

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
from datetime import UTC, datetime
from typing import Any

from api.audit.chain import audit
from api.exports.model import ExportRepo
from api.exports.storage import ObjectStore
from api.retention.holds import held_sql, list_holds
from sinks.store import Store


@dataclass
class Erasure:
    request_id: str
    tenant_id: str
    user_id: str
    status: str  # completed | refused
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


def erase_user(
    store: Store,
    objects: ObjectStore | None,
    *,
    tenant_id: str,
    user_id: str,
    actor_id: str,
    actor_role: str,
    publish: Callable[[str, str, str], None] | None = None,
) -> Erasure:
    req = Erasure("dr_" + uuid.uuid4().hex[:12], tenant_id, user_id, "completed")
    reason = _why_held(store, tenant_id, user_id)
    if reason:
        req.status, req.reason = "refused", reason
    else:
        if publish is not None:  # (tenant, user, request id) to the stream worker
            publish(tenant_id, user_id, req.request_id)
        p = {"t": tenant_id, "u": user_id}
        anon = (
            "anonymous_id IN (SELECT anonymous_id FROM identity_links"
            " WHERE tenant_id = {t:String} AND user_id = {u:String})"
        )
        targets = {
            "events": "tenant_id = {t:String} AND (learner_id = {u:String}"
            " OR user_id = {u:String} OR " + anon + ")",
            "identity_links": "tenant_id = {t:String} AND user_id = {u:String}",
            "learner_daily": "tenant_id = {t:String} AND user_id = {u:String}",
            "learner_scores": "tenant_id = {t:String} AND user_id = {u:String}",
            "optout_state": "tenant_id = {t:String} AND user_id = {u:String}",
            "notifications": "tenant_id = {t:String} AND user_id = {u:String}",
            "notification_prefs": "tenant_id = {t:String} AND user_id = {u:String}",
        }
        # events first: its condition reads identity_links
        for table, where in targets.items():
            n = _n(store, f"{table} WHERE {where}", p)
            if n:
                store.command(
                    f"ALTER TABLE {table} DELETE WHERE {where} SETTINGS mutations_sync = 1", p
                )
            req.removed[table] = n
        repo = ExportRepo(store)
        files = 0
        for e in repo.where(
            "tenant_id = {t:String} AND requested_by = {u:String} AND status != 'purged'", p
        ):
            if objects is not None and e.object_key:
                objects.delete(e.object_key)
            repo.update(e, status="purged")
            files += 1
        req.removed["export_files"] = files
    store.insert(
        "deletion_requests",
        [
            {
                "request_id": req.request_id,
                "tenant_id": tenant_id,
                "user_id": user_id,
                "requested_by": actor_id,
                "status": req.status,
                "reason": req.reason,
                "removed": json.dumps(req.removed, sort_keys=True),
                "created_at": datetime.now(UTC),
                "version": time.time_ns(),
            }
        ],
    )
    audit(
        store,
        tenant_id=tenant_id,
        actor_id=actor_id,
        actor_role=actor_role,
        action="erasure.request",
        resource=f"user:{user_id}",
        outcome="ok" if req.status == "completed" else "refused",
        detail={"request_id": req.request_id, "reason": req.reason, "removed": req.removed},
    )
    return req
