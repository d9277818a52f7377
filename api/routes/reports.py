"""Role-scoped reports: thin routes over the report modules in api/reports/.

The scope comes from the verified bearer token and the org data
(api/reports/scope.py); query parameters only narrow it. Anything outside
the scope is a 403, recorded in ``audit_events``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.concurrency import run_in_threadpool
from prometheus_client import Counter, Histogram

from api.audit.chain import audit
from api.deps import Ctx, CurrentPrincipal
from api.reports import figures
from api.reports.activity import activity as activity_report
from api.reports.common import Known, describe, freshness
from api.reports.engagement import engagement as engagement_report
from api.reports.kpis import kpis as kpi_report
from api.reports.learner_events import learner_events as learner_events_report
from api.reports.learners import learners as learner_list
from api.reports.org import OrgRegistry
from api.reports.scope import Scope, ScopeDenied, compute_scope, require_per_learner
from api.security import Principal

router = APIRouter(prefix="/v1/reports", tags=["reports"])

REPORT_SECONDS = Histogram("skillstream_report_seconds", "Report latency (query layer)", ["report"])
DENIED = Counter("skillstream_report_denied_total", "Report requests refused (403)", ["report"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid or expired bearer token."},
    403: {"description": "Outside the caller's scope (logged to the audit trail)."},
}


def deny(ctx: Any, principal: Principal, report: str, detail: str, params: dict) -> HTTPException:
    DENIED.labels(report).inc()
    audit(
        ctx.store,
        principal=principal,
        action="report.denied",
        resource=report,
        outcome="denied",
        detail={"reason": detail, "params": {k: v for k, v in params.items() if v is not None}},
    )
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


async def _scope(
    ctx: Any, principal: Principal, report: str, *, per_learner: bool = False, **params: Any
) -> Scope:
    try:
        scope = await run_in_threadpool(
            lambda: compute_scope(principal, OrgRegistry(ctx.store), **params)
        )
        if per_learner:
            require_per_learner(scope)
    except ScopeDenied as exc:
        raise deny(ctx, principal, report, exc.detail, params) from exc
    return scope


TenantQ = Annotated[
    str | None,
    Query(description="platform_admin only: pick a tenant (none: global). Others: must be "
          "their own tenant or omitted."),
]  # fmt: skip
ProgramQ = Annotated[str | None, Query(description="Narrow to one program (inside the scope).")]
CohortQ = Annotated[str | None, Query(description="Narrow to one cohort.")]
UserQ = Annotated[str | None, Query(description="Narrow to one learner (inside the scope).")]


def _figures(ctx: Any, scope: Scope, report: str, params: dict) -> Callable[[], dict | None]:
    """A first view's answer from the report's kept figures (api/reports/
    figures.py), unless their data are more than an interval (and 10 s for
    their computation) behind the tenant's."""

    def first() -> dict | None:
        if figures.target(scope, report, params) is None:
            return None
        s = ctx.settings
        return figures.read(ctx.store, scope, report, params, newest=_fresh_before(ctx, scope).at,
                            max_behind_s=s.report_figures_interval_s + 10)  # fmt: skip

    return first


def _fresh_before(ctx: Any, scope: Scope) -> Known:
    """The scope's data freshness, read before a computation's queries run."""
    return Known(freshness(ctx.store, scope, ctx.data_fresh_as_of if ctx.sink else None))


async def _report(
    ctx: Any,
    report: str,
    scope: Scope,
    compute: Callable[[Known], dict],
    first: Callable[[], dict | None] | None = None,
    **params: Any,
) -> dict:
    """A report's newest kept result (api/reports/cache.py); on a first view
    ``first()`` (figures kept in the store) or ``compute``, given the
    freshness read before it ran."""

    def timed() -> dict:
        fresh = _fresh_before(ctx, scope)
        with REPORT_SECONDS.labels(report).time():
            return compute(fresh)

    key = ctx.report_cache.key(report, scope, **params)
    return await run_in_threadpool(
        lambda: ctx.report_cache.get(key, timed, tenant=scope.tenant_id, first=first)
    )


@router.get("/engagement", responses=ERRORS, summary="Engagement · last N weeks")
async def engagement(
    ctx: Ctx,
    principal: CurrentPrincipal,
    weeks: Annotated[int, Query(ge=1, le=52)] = 8,
    tenant_id: TenantQ = None,
    program_id: ProgramQ = None,
    cohort_id: CohortQ = None,
    user_id: UserQ = None,
) -> dict:
    """Weekly median engagement score vs the target; tiles (programs tracked,
    median engagement, weekly active learners, completion rate, at-risk
    learners) with their change against the previous week; `computed_at`,
    `data_fresh_as_of`."""
    scope = await _scope(
        ctx, principal, "engagement",
        tenant_id=tenant_id, program_id=program_id, cohort_id=cohort_id, user_id=user_id,
    )  # fmt: skip
    out = await _report(
        ctx, "engagement", scope,
        lambda fresh: engagement_report(
            ctx.store, scope, weeks=weeks, target=ctx.settings.engagement_target,
            sink_fresh=fresh,
        ),
        first=_figures(ctx, scope, "engagement", {"weeks": weeks}),
        weeks=weeks,
    )  # fmt: skip
    out["stale_after_s"] = ctx.settings.stale_after_s
    return out


@router.get("/learners", responses=ERRORS, summary="Learners in scope, scored")
async def learners(
    ctx: Ctx,
    principal: CurrentPrincipal,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
    sort: Annotated[
        Literal[
            "score",
            "-score",
            "user_id",
            "-user_id",
            "days_inactive",
            "-days_inactive",
            "at_risk",
            "-at_risk",
        ],
        Query(description="Sort key; '-' for descending. Ties by tenant then user."),
    ] = "-at_risk",  # fmt: skip
    at_risk: Annotated[bool | None, Query(description="Only at-risk (true) or not.")] = None,
    days: Annotated[int, Query(ge=1, le=365, description="Scored within N days.")] = 28,
    tenant_id: TenantQ = None,
    program_id: ProgramQ = None,
    cohort_id: CohortQ = None,
    user_id: UserQ = None,
) -> dict:
    """Latest score per learner with its 14-day components, days inactive and
    at-risk flag; paginated. Mentors get 403 (aggregates only)."""
    params = {"page": page, "page_size": page_size, "sort": sort, "at_risk": at_risk,
              "days": days}  # fmt: skip
    scope = await _scope(
        ctx, principal, "learners", per_learner=True,
        tenant_id=tenant_id, program_id=program_id, cohort_id=cohort_id, user_id=user_id,
    )  # fmt: skip
    return await _report(
        ctx, "learners", scope,
        lambda fresh: learner_list(
            ctx.store, scope, page=page, page_size=page_size, sort=sort, at_risk=at_risk,
            days=days, sink_fresh=fresh,
        ),
        first=_figures(ctx, scope, "learners", params),
        **params,
    )  # fmt: skip


@router.get("/learners/{learner_id}/events", responses=ERRORS, summary="One learner's events")
async def learner_events(
    ctx: Ctx,
    principal: CurrentPrincipal,
    learner_id: Annotated[str, Path(max_length=128)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    tenant_id: TenantQ = None,
) -> dict:
    """A learner's newest raw (clean) events. Survey free text is redacted
    below company_admin; mentors get 403."""
    scope = await _scope(
        ctx, principal, "learner_events", per_learner=True, tenant_id=tenant_id,
        user_id=learner_id,
    )  # fmt: skip
    if scope.tenant_id is None:
        raise deny(ctx, principal, "learner_events", "pick a tenant_id", {"user_id": learner_id})
    return await run_in_threadpool(
        lambda: learner_events_report(ctx.store, scope, learner_id, limit=limit)
    )


@router.get("/kpis", responses=ERRORS, summary="Seed 003's KPIs")
async def kpis(
    ctx: Ctx,
    principal: CurrentPrincipal,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    tenant_id: TenantQ = None,
    program_id: ProgramQ = None,
    cohort_id: CohortQ = None,
    user_id: UserQ = None,
) -> dict:
    """Onboarding completion within 24 h, action-plan adherence, resume-to-
    roadmap conversion within 14 days, advisee activation in 30 days,
    readiness delta, WAU: each with numerator, denominator and definition."""
    scope = await _scope(
        ctx, principal, "kpis",
        tenant_id=tenant_id, program_id=program_id, cohort_id=cohort_id, user_id=user_id,
    )  # fmt: skip
    return await _report(
        ctx, "kpis", scope,
        lambda fresh: kpi_report(ctx.store, scope, days=days, sink_fresh=fresh,
                                   default_term=ctx.settings.readiness_term),
        first=_figures(ctx, scope, "kpis", {"days": days}),
        days=days,
    )  # fmt: skip


@router.get("/activity", responses=ERRORS, summary="Reports generated, audit events")
async def activity(
    ctx: Ctx,
    principal: CurrentPrincipal,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    tenant_id: TenantQ = None,
) -> dict:
    """The dashboard's "Reports generated" (exports requested in the last
    `days` days, failed aside) and "Audit events" tiles with the `days`
    before: the tenant's for admins, the caller's own for other roles."""
    scope = await _scope(ctx, principal, "activity", tenant_id=tenant_id)
    return await _report(
        ctx,
        "activity",
        scope,
        lambda _fresh: activity_report(ctx.store, scope, days=days),
        days=days,
    )


@router.get("/tenants", responses=ERRORS, summary="Tenants (platform_admin)")
async def tenants(ctx: Ctx, principal: CurrentPrincipal) -> dict:
    """Every tenant's id and name, for the dashboard's tenant picker."""
    if principal.role != "platform_admin":
        raise deny(ctx, principal, "tenants", "platform admins only", {})
    rows = await run_in_threadpool(ctx.tenants.all)
    return {"tenants": [{"tenant_id": t.tenant_id, "name": t.name} for t in rows]}


@router.get("/me", responses=ERRORS, summary="Who the token speaks for, and its scope")
async def me(ctx: Ctx, principal: CurrentPrincipal) -> dict:
    scope = await _scope(ctx, principal, "me")
    return {
        "tenant_id": principal.tenant_id,
        "tenant_name": principal.tenant_name,
        "role": principal.role,
        "user_id": principal.user_id,
        "capabilities": sorted(principal.capabilities),
        "scope": describe(scope),
        "stale_after_s": ctx.settings.stale_after_s,
    }
