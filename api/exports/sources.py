"""What an export contains: the rows of one report, from the same query layer
as the screen (api/reports/: engagement.py, learners.py, kpis.py), flattened into columns.

Each source yields rows lazily so a writer never holds the whole report;
``summary`` is the engagement report over the same scope, which the PDF
draws as tiles and the chart.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.audit.chain import FIELDS as AUDIT_FIELDS
from api.reports.engagement import engagement
from api.reports.kpis import kpis
from api.reports.learners import COMPONENTS, learners_in_order
from api.reports.scope import Scope
from sinks.store import Store

REPORTS = ("engagement", "learners", "kpis", "audit")
LEARNER_COLUMNS = (
    "tenant_id",
    "user_id",
    "program_id",
    "cohort_id",
    "scored_on",
    "score",
    "at_risk",
    "days_inactive",
    *COMPONENTS,
)
ENGAGEMENT_COLUMNS = (
    "week",
    "median_score",
    "target",
    "learners_scored",
    "active_learners",
    "programs_tracked",
    "at_risk",
    "completion_rate",
)
KPI_COLUMNS = ("key", "label", "persona", "value", "unit", "numerator", "denominator", "definition")
AUDIT_COLUMNS = (*AUDIT_FIELDS, "writer", "legal_hold", "prev_hash", "hash")


@dataclass(frozen=True)
class ExportParams:
    """The report endpoints' filters, plus the audit export's."""

    weeks: int = 8
    days: int | None = None
    at_risk: bool | None = None
    tenant_id: str | None = None
    program_id: str | None = None
    cohort_id: str | None = None
    user_id: str | None = None
    since: datetime | None = None  # audit: time range [since, until)
    until: datetime | None = None
    legal_hold: bool | None = None  # audit: only rows under (or not under) a hold


def columns(report: str) -> tuple[str, ...]:
    return {
        "learners": LEARNER_COLUMNS,
        "engagement": ENGAGEMENT_COLUMNS,
        "kpis": KPI_COLUMNS,
        "audit": AUDIT_COLUMNS,
    }[report]


def rows(
    store: Store,
    scope: Scope | None,
    report: str,
    p: ExportParams,
    *,
    target: float,
    chunk: int,
    limit: int,
    term: str = "quarter",
    tenant_for_audit: str = "",
) -> Iterator[dict[str, Any]]:
    """The report's rows; learners: the first ``limit`` in (tenant, user)
    order, ``chunk`` learners a query (a PDF's table; a CSV of learners is
    written by ClickHouse, runner._clickhouse_csv)."""
    if report == "learners":
        assert scope is not None
        items = learners_in_order(store, scope, at_risk=p.at_risk, days=p.days or 28,
                                          chunk=chunk)  # fmt: skip
        for item in itertools.islice(items, limit):
            comps = item.pop("components")
            yield {**item, **comps}
    elif report == "engagement":
        assert scope is not None
        yield from engagement(store, scope, weeks=p.weeks, target=target)["series"]
    elif report == "kpis":
        assert scope is not None
        yield from kpis(store, scope, days=p.days or 30, default_term=term)["kpis"]
    elif report == "audit":
        from api.audit.export import audit_rows

        yield from audit_rows(
            store,
            tenant_for_audit,
            since=p.since,
            until=p.until,
            legal_hold=p.legal_hold,
            chunk=chunk,
        )
    else:
        raise ValueError(f"unknown report {report!r}")


def summary(store: Store, scope: Scope, target: float, weeks: int = 8) -> dict[str, Any]:
    return engagement(store, scope, weeks=weeks, target=target)
