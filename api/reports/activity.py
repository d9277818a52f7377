"""The dashboard's activity tiles: "Reports generated" (exports requested,
failed ones aside) and "Audit events", each over the last days with the
days before as previous. Admins count their tenant's (platform: every or
the picked tenant); anyone else their own exports and their own audit rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.reports.common import describe, iso, tile
from api.reports.scope import Scope
from sinks.store import Store

REPORTS_GENERATED = """
    SELECT uniqExactIf(export_id, created_at > {{since:DateTime64(3)}}) AS cur,
           uniqExactIf(export_id, created_at <= {{since:DateTime64(3)}}) AS prev
    FROM exports FINAL
    WHERE {tenant} AND ({{me:String}} = '' OR requested_by = {{me:String}})
      AND created_at > {{prev:DateTime64(3)}} AND created_at <= {{now:DateTime64(3)}}
      AND status != 'failed'
"""
AUDIT_EVENTS = """
    SELECT countIf(at > {{since:DateTime64(3)}}) AS cur,
           countIf(at <= {{since:DateTime64(3)}}) AS prev
    FROM audit_events
    WHERE {tenant} AND ({{me:String}} = '' OR actor_id = {{me:String}})
      AND at > {{prev:DateTime64(3)}} AND at <= {{now:DateTime64(3)}}
"""


def activity(
    store: Store, scope: Scope, *, days: int = 30, now: datetime | None = None
) -> dict[str, Any]:
    """The two tiles over the last ``days`` days, the ``days`` before as
    previous."""
    now = now or datetime.now(UTC)
    own = scope.role not in ("platform_admin", "company_admin")
    t = scope.tenant_filter()
    p = {
        **t.params,
        "me": scope.actor_id if own else "",
        "since": now - timedelta(days=days),
        "prev": now - timedelta(days=2 * days),
        "now": now,
    }
    reports = store.query(REPORTS_GENERATED.format(tenant=t.sql), p)[0]
    audits = store.query(AUDIT_EVENTS.format(tenant=t.sql), p)[0]
    return {
        "scope": describe(scope),
        "window_days": days,
        "tiles": {
            "reports_generated": tile(int(reports["cur"]), int(reports["prev"])),
            "audit_events": tile(int(audits["cur"]), int(audits["prev"])),
        },
        "computed_at": iso(datetime.now(UTC)),
    }
