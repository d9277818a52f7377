"""The KPIs kept as figures per tenant and program (migration 0018), so the
first view of a tenant's or a program's KPIs reads one row instead of
running the KPIs' nine statements.

After sink rounds, at most once per ``KPI_FIGURES_INTERVAL_S``, the keeper
plans the figures whose tenant has newer data than their row (or no row),
then computes them one at a time between its report refreshes
(``KpiFigures.refresh_one``). A row holds the KPI list, when it was
computed and the tenant's freshness read before its queries ran; rows
made by other code (``RULES``: a hash of the KPIs' module) are not read.
The erasure and the purge delete a tenant's rows
(``summaries.delete_rows``); a computation that overlapped a deletion is
not stored.

The figures answer a scope exactly when its KPIs are the tenant's or one
program's over ``FIGURES_DAYS`` (``target``): a company or platform admin
with a tenant, optionally narrowed to a program, and a program owner with
one program or narrowed to one. Other scopes (a manager's learners, a
cohort, one learner) compute on their first view.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.reports import kpis as kpi_module
from api.reports import summaries
from api.reports.common import Known, describe, freshness, iso
from api.reports.scope import Scope
from sinks.store import Store

FIGURES_DAYS = 30  # the dashboard's KPI window
RULES = hashlib.sha256(Path(kpi_module.__file__).read_bytes()).hexdigest()[:16]
Target = tuple[str, str]  # (tenant, program; '' = the whole tenant)

LATEST = """
    SELECT tenant_id, program_id, argMax(items, computed_at) AS items,
           toUnixTimestamp64Milli(max(computed_at)) AS computed_ms,
           toUnixTimestamp64Milli(argMax(data_fresh_as_of, computed_at)) AS fresh_ms
    FROM kpi_figures
    WHERE rules = {{rules:String}} AND days = {{days:UInt16}} AND {where}
    GROUP BY tenant_id, program_id
"""
TENANTS = """
    SELECT tenant_id, toUnixTimestamp64Milli(max(received_at)) AS ms
    FROM tenant_freshness GROUP BY tenant_id
"""
PROGRAMS = """
    SELECT DISTINCT tenant_id, program_id FROM learner_firsts WHERE program_id != ''
"""


def target(scope: Scope, days: int) -> Target | None:
    """The figures row that is exactly this scope's KPIs, if there is one."""
    if days != FIGURES_DAYS or scope.tenant_id is None:
        return None
    if scope.learners is not None or scope.cohort_id or scope.user_id:
        return None
    if scope.program_id is not None:
        return scope.tenant_id, scope.program_id
    if scope.programs is None:
        return scope.tenant_id, ""
    if len(scope.programs) == 1:
        return scope.tenant_id, scope.programs[0]
    return None


def read(store: Store, scope: Scope, days: int) -> dict[str, Any] | None:
    """The scope's KPIs from their kept figures, None when there are none."""
    t = target(scope, days)
    if t is None:
        return None
    rows = store.query(
        LATEST.format(where="tenant_id = {t:String} AND program_id = {p:String}"),
        {"rules": RULES, "days": days, "t": t[0], "p": t[1]},
    )
    if not rows:
        return None
    r = rows[0]
    return {
        "scope": describe(scope),
        "window_days": days,
        "kpis": json.loads(r["items"]),
        "computed_at": iso(_ms(r["computed_ms"])),
        "data_fresh_as_of": iso(_ms(r["fresh_ms"])),
    }


def _ms(v: Any) -> datetime | None:
    return None if v is None else datetime.fromtimestamp(int(v) / 1000, UTC)


def compute(
    store: Store,
    t: Target,
    fresh: datetime | None,
    default_term: str,
    days: int = FIGURES_DAYS,
) -> dict[str, Any]:
    """One figures row: the KPIs of the tenant or program ``t``, stated as
    fresh as ``fresh`` (read by the caller before this runs)."""
    scope = Scope("company_admin", "kpi-figures", t[0], None, None, program_id=t[1] or None)
    fresh = fresh or freshness(store, scope)
    now = datetime.now(UTC)
    got = kpi_module.kpis(store, scope, days=days, now=now, sink_fresh=Known(fresh),
                          default_term=default_term)  # fmt: skip
    return {
        "tenant_id": t[0],
        "program_id": t[1],
        "days": days,
        "rules": RULES,
        "items": json.dumps(got["kpis"]),
        "computed_at": now,
        "data_fresh_as_of": fresh,
    }


@dataclass
class KpiFigures:
    """Plans and computes the figures after sink rounds (the keeper thread
    calls ``refresh_one``)."""

    store: Store
    generation: Callable[[], int]
    fresh: Callable[[str], datetime | None]  # a tenant's freshness, before computing
    default_term: str = "quarter"
    interval_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    tenants: tuple[str, ...] | None = None  # None: every tenant with data
    _queue: list[Target] = field(default_factory=list)
    _planned_round: int | None = None
    _planned_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh_one(self) -> bool:
        """Compute and store the next figures due; False when none is."""
        with self._lock:
            if not self._queue:
                self._plan()
            if not self._queue:
                return False
            t = self._queue.pop(0)
        before = summaries.deletions(t[0])
        row = compute(self.store, t, self.fresh(t[0]), self.default_term)
        with summaries.DELETING:  # no delete between the check and the row
            if summaries.deletions(t[0]) == before:  # else computed from rows now deleted
                self.store.insert("kpi_figures", [row])
        return True

    def _plan(self) -> None:
        """Queue the figures whose tenant has newer data than their row,
        once per round at most and per ``interval_s``."""
        if self.interval_s <= 0:
            return
        rounds, now = self.generation(), self.clock()
        if rounds == self._planned_round or now - self._planned_at < self.interval_s:
            return
        self._planned_round, self._planned_at = rounds, now
        self._queue = due(self.store, self.tenants)


def due(store: Store, tenants: tuple[str, ...] | None = None) -> list[Target]:
    """Every tenant (of ``tenants``) and program whose figures are missing,
    of other rules, or older than the tenant's newest data; tenants first."""
    fresh = {r["tenant_id"]: int(r["ms"]) for r in store.query(TENANTS)
             if tenants is None or r["tenant_id"] in tenants}  # fmt: skip
    kept = {
        (r["tenant_id"], r["program_id"]): int(r["fresh_ms"] or 0)
        for r in store.query(LATEST.format(where="1"), {"rules": RULES, "days": FIGURES_DAYS})
    }
    targets = [(t, "") for t in sorted(fresh)]
    targets += sorted((r["tenant_id"], r["program_id"]) for r in store.query(PROGRAMS)
                      if r["tenant_id"] in fresh)  # fmt: skip
    return [t for t in targets if kept.get(t, -1) < fresh[t[0]]]
