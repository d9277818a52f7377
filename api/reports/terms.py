"""Terms for the readiness-delta KPI: calendar periods (UTC), per tenant.

A tenant's term is ``tenants.readiness_term`` (set with ``skillstream tenant
term``), else ``READINESS_TERM`` (default ``quarter``). The KPI compares a
learner's first and last assessment inside the current term; the previous
term gives the tile's ``previous``.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from api.audit.chain import audit
from sinks.store import Store

TERMS = {"month": 1, "quarter": 3, "half": 6, "year": 12}


def term_start(day: date, term: str) -> date:
    months = TERMS[term]
    return date(day.year, (day.month - 1) // months * months + 1, 1)


def previous_start(start: date, term: str) -> date:
    month = start.month - TERMS[term]
    return date(start.year - (month < 1), (month - 1) % 12 + 1, 1)


def tenant_term(store: Store, tenant_id: str | None, default: str) -> str:
    if tenant_id is None:
        return default
    rows = store.query(
        "SELECT readiness_term AS t FROM tenants FINAL WHERE tenant_id = {t:String}",
        {"t": tenant_id},
    )
    return rows[0]["t"] if rows and rows[0]["t"] in TERMS else default


def set_term(store: Store, tenant_id: str, term: str, *, actor_id: str, actor_role: str) -> None:
    if term not in TERMS:
        raise ValueError(f"term must be one of {', '.join(TERMS)}")
    rows = store.query("SELECT * FROM tenants FINAL WHERE tenant_id = {t:String}", {"t": tenant_id})
    if not rows:
        raise LookupError(f"no tenant {tenant_id!r}")
    before = rows[0]["readiness_term"]
    time.sleep(0.002)  # updated_at (ms) is the version: never equal to the previous row's
    row = {**rows[0], "readiness_term": term, "updated_at": datetime.now(UTC)}
    with audit(store, tenant_id=tenant_id, actor_id=actor_id, actor_role=actor_role,
               action="tenant.readiness_term", resource=f"tenant:{tenant_id}",
               outcome="ok", detail={"before": before, "after": term}):  # fmt: skip
        store.insert("tenants", [row])
