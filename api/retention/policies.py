"""Per-tenant retention policies.

Subjects: every event name of the dictionary (default: its retention),
``aggregates`` (learner days, scores, program weeks; default
``AGGREGATE_RETENTION_DAYS``) and ``exports`` (export records and their files;
default ``EXPORT_RETENTION_DAYS``). The audit log is permanent and has none.
"""

from __future__ import annotations

import time

from api.audit.chain import audit
from core.settings import Settings
from schemas.dictionary import BY_NAME, DEFAULT_RETENTION_YEARS
from sinks.store import Store

EXTRA_SUBJECTS = ("aggregates", "exports")
UNKNOWN_EVENT_DAYS = DEFAULT_RETENTION_YEARS * 365


class PolicyError(ValueError):
    pass


def defaults(settings: Settings) -> dict[str, int]:
    d = {name: spec.retention_days for name, spec in sorted(BY_NAME.items())}
    d["aggregates"] = settings.aggregate_retention_days
    d["exports"] = settings.export_retention_days
    return d


def effective(store: Store, settings: Settings, tenant_id: str) -> dict[str, int]:
    out = defaults(settings)
    for r in store.query(
        "SELECT subject, retention_days FROM retention_policies FINAL"
        " WHERE tenant_id = {t:String} AND deleted = 0",
        {"t": tenant_id},
    ):
        out[r["subject"]] = int(r["retention_days"])
    return out


def set_policy(
    store: Store,
    settings: Settings,
    *,
    tenant_id: str,
    subject: str,
    days: int | None,
    actor_id: str,
    actor_role: str,
) -> dict[str, int]:
    """Set (``days``) or reset to the default (None) one subject's retention."""
    if subject not in BY_NAME and subject not in EXTRA_SUBJECTS:
        raise PolicyError(f"unknown subject {subject!r}: an event name, aggregates or exports")
    if days is not None and not 1 <= days <= 36_500:
        raise PolicyError("retention_days must be 1..36500")
    value = days if days is not None else defaults(settings)[subject]
    with audit(
        store,
        tenant_id=tenant_id,
        actor_id=actor_id,
        actor_role=actor_role,
        action="retention.policy",
        resource=f"retention:{subject}",
        outcome="ok",
        detail={"subject": subject, "retention_days": value, "reset": days is None},
    ):
        _store_policy(store, tenant_id, subject, days, actor_id)
        now = effective(store, settings, tenant_id)
        if subject in BY_NAME:
            _lengthen_ttl(store, tenant_id, subject, now[subject])
    return now


def _store_policy(
    store: Store, tenant_id: str, subject: str, days: int | None, actor_id: str
) -> None:
    store.insert(
        "retention_policies",
        [
            {
                "tenant_id": tenant_id,
                "subject": subject,
                "retention_days": days or 0,
                "deleted": int(days is None),
                "changed_by": actor_id,
                "version": time.time_ns(),
            }
        ],
    )


def _lengthen_ttl(store: Store, tenant_id: str, subject: str, days: int) -> None:
    # The events table's TTL reads each row's retention_days (the
    # dictionary's, set by the sink). Only ever lengthen it, so a longer
    # tenant policy is not cut short by the TTL; shortening is the purge's
    # job, which respects legal holds and records what it removed.
    keep = max(days, BY_NAME[subject].retention_days)
    where = "tenant_id = {t:String} AND event_name = {e:String} AND retention_days < {d:UInt16}"
    p = {"d": min(keep, 65_535), "t": tenant_id, "e": subject}
    # a mutation rewrites parts: only start one when a row needs it
    if int(store.query(f"SELECT count() AS n FROM events WHERE {where}", p)[0]["n"]):
        store.command(
            "ALTER TABLE events UPDATE retention_days = {d:UInt16}"
            f" WHERE {where} SETTINGS mutations_sync = 1",
            p,
        )
