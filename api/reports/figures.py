"""The dashboard's reports kept as figures per tenant and program (migration
0019), so the first view of a tenant's or a program's dashboard reads one
row per report instead of running its statements: the KPIs, the engagement
chart and the at-risk list, each with the dashboard's parameters
(``KEPT``).

After sink rounds, at most once per ``REPORT_FIGURES_INTERVAL_S``, the
keeper plans the figures whose tenant has newer data than their row (or no
row), then computes them one report at a time between its refreshes of
viewed results (``ReportFigures.refresh_one``). A row holds the report's
answer, when it was computed and the tenant's freshness read before its
queries ran; rows made by other code (``RULES``: a hash of the reports'
modules) are not read. The erasure and the purge delete a tenant's rows
(``summaries.delete_rows``); a computation that overlapped a deletion is
not stored.

The figures answer a scope exactly when its rows are the tenant's or one
program's (``target``): a company or platform admin with a tenant,
optionally narrowed to a program, and a program owner with one program or
narrowed to one. Other scopes (a manager's learners, a cohort, one learner)
compute on their first view.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from api.reports import common, summaries
from api.reports import engagement as engagement_module
from api.reports import kpis as kpi_module
from api.reports import learners as learners_module
from api.reports.common import Known, describe, freshness
from api.reports.scope import Scope
from sinks.store import Store

# Each kept report and the parameters the dashboard asks it with (as the
# route passes them: api/static/app.js).
KEPT: dict[str, dict[str, Any]] = {
    "engagement": {"weeks": 8},
    "kpis": {"days": 30},
    "learners": {"page": 1, "page_size": 10, "sort": "score", "at_risk": True, "days": 28},
}
RULES = hashlib.sha256(
    b"".join(
        Path(m.__file__).read_bytes()
        for m in (common, engagement_module, kpi_module, learners_module)
    )  # fmt: skip
).hexdigest()[:16]
Target = tuple[str, str]  # (tenant, program; '' = the whole tenant)
Job = tuple[Target, str]  # a target and one of its reports
COMPUTED = Counter(
    "skillstream_report_figures_total", "Report figures rows computed", ["report", "outcome"]
)  # stored, or discarded (a deletion overlapped)

LATEST = """
    SELECT tenant_id, program_id, report, argMax(result, computed_at) AS result,
           toUnixTimestamp64Milli(max(computed_at)) AS computed_ms,
           toUnixTimestamp64Milli(argMax(data_fresh_as_of, computed_at)) AS fresh_ms
    FROM report_figures
    WHERE rules = {{rules:String}} AND {where}
    GROUP BY tenant_id, program_id, report, params
"""
TENANTS = """
    SELECT tenant_id, toUnixTimestamp64Milli(max(received_at)) AS ms
    FROM tenant_freshness GROUP BY tenant_id
"""
PROGRAMS = """
    SELECT DISTINCT tenant_id, program_id FROM learner_firsts WHERE program_id != ''
"""


def _params(report: str) -> str:
    return json.dumps(KEPT[report], sort_keys=True)


def target(scope: Scope, report: str, params: dict[str, Any]) -> Target | None:
    """The figures row that is exactly this scope's report, if there is one."""
    if KEPT.get(report) != params or scope.tenant_id is None:
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


def read(
    store: Store,
    scope: Scope,
    report: str,
    params: dict[str, Any],
    *,
    newest: datetime | None = None,
    max_behind_s: float | None = None,
) -> dict | None:
    """The scope's report from its kept figures; None when there are none,
    or when their data are more than ``max_behind_s`` behind ``newest`` (the
    tenant's freshness now): a first view then computes rather than show
    figures from before a back-fill."""
    t = target(scope, report, params)
    if t is None:
        return None
    where = "tenant_id = {t:String} AND program_id = {p:String} AND report = {r:String}"
    rows = store.query(
        LATEST.format(where=where + " AND params = {q:String}"),
        {"rules": RULES, "t": t[0], "p": t[1], "r": report, "q": _params(report)},
    )
    if not rows:
        return None
    r = rows[0]
    if newest is not None and max_behind_s is not None and _behind(r, newest) > max_behind_s:
        return None
    result = json.loads(r["result"])
    if report == "kpis" and scope.role == "platform_admin":
        # kept as a company admin sees them; the platform-wide KPI is a platform admin's
        now = datetime.now(UTC)
        days = int(params.get("days", 30))
        item = kpi_module.data_freshness(store, now - timedelta(days=days), now)
        result["kpis"] = [*result["kpis"], {**item, "window": f"last {days} days"}]
    return {
        **result,
        "scope": describe(scope),
        "computed_at": common.iso(_ms(r["computed_ms"])),
        "data_fresh_as_of": common.iso(_ms(r["fresh_ms"])),
    }


def _behind(row: dict[str, Any], newest: datetime) -> float:
    """How far (s) a row's data are behind ``newest``."""
    if row["fresh_ms"] is None:
        return float("inf")
    return newest.timestamp() - int(row["fresh_ms"]) / 1000


def _ms(v: Any) -> datetime | None:
    return None if v is None else datetime.fromtimestamp(int(v) / 1000, UTC)


def compute(
    store: Store,
    t: Target,
    report: str,
    fresh: datetime | None,
    *,
    target_score: float = 70.0,
    default_term: str = "quarter",
) -> dict[str, Any]:
    """One figures row: ``report`` of the tenant or program ``t``, stated as
    fresh as ``fresh`` (read by the caller before this runs)."""
    scope = Scope("company_admin", "report-figures", t[0], None, None, program_id=t[1] or None)
    known = Known(fresh or freshness(store, scope))
    p = KEPT[report]
    now = datetime.now(UTC)
    if report == "kpis":
        got = kpi_module.kpis(store, scope, **p, now=now, sink_fresh=known,
                              default_term=default_term)  # fmt: skip
    elif report == "engagement":
        got = engagement_module.engagement(store, scope, **p, target=target_score,
                                           sink_fresh=known)  # fmt: skip
    else:
        got = learners_module.learners(store, scope, **p, sink_fresh=known)
    result = {k: v for k, v in got.items()
              if k not in ("scope", "computed_at", "data_fresh_as_of")}  # fmt: skip
    return {
        "tenant_id": t[0],
        "program_id": t[1],
        "report": report,
        "params": _params(report),
        "rules": RULES,
        "result": json.dumps(result, default=lambda o: o.isoformat()),
        "computed_at": now,
        "data_fresh_as_of": known.at,
    }


@dataclass
class ReportFigures:
    """Plans and computes the figures after sink rounds (the keeper thread
    calls ``refresh_one``)."""

    store: Store
    generation: Callable[[], int]
    fresh: Callable[[str], datetime | None]  # a tenant's freshness, before computing
    target_score: float = 70.0
    default_term: str = "quarter"
    interval_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    tenants: tuple[str, ...] | None = None  # None: every tenant with data
    _queue: list[Job] = field(default_factory=list)
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
            t, report = self._queue.pop(0)
        before = summaries.deletions(t[0])
        row = compute(self.store, t, report, self.fresh(t[0]), target_score=self.target_score,
                      default_term=self.default_term)  # fmt: skip
        with summaries.DELETING:  # no delete between the check and the row
            kept = summaries.deletions(t[0]) == before  # else computed from rows now deleted
            if kept:
                self.store.insert("report_figures", [row])
        COMPUTED.labels(report, "stored" if kept else "discarded").inc()
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


def due(store: Store, tenants: tuple[str, ...] | None = None) -> list[Job]:
    """Every report of every tenant (of ``tenants``) and program whose
    figures are missing, of other rules or parameters, or older than the
    tenant's newest data; tenants first."""
    fresh = {r["tenant_id"]: int(r["ms"]) for r in store.query(TENANTS)
             if tenants is None or r["tenant_id"] in tenants}  # fmt: skip
    kept: dict[Job, int] = {}
    for report in KEPT:
        rows = store.query(LATEST.format(where="report = {r:String} AND params = {q:String}"),
                           {"rules": RULES, "r": report, "q": _params(report)})  # fmt: skip
        for r in rows:
            kept[((r["tenant_id"], r["program_id"]), report)] = int(r["fresh_ms"] or 0)
    targets = [(t, "") for t in sorted(fresh)]
    targets += sorted((r["tenant_id"], r["program_id"]) for r in store.query(PROGRAMS)
                      if r["tenant_id"] in fresh)  # fmt: skip
    return [(t, report) for t in targets for report in KEPT
            if kept.get((t, report), -1) < fresh[t[0]]]  # fmt: skip
