"""What a caller may see: a ``Scope`` from the verified token and the org data,
and the SQL conditions every report reads its rows through (``Scope.filter``,
``Scope.tenant_filter``: a ``Filter``).

The tenant ALWAYS comes from the token (only a platform_admin may pick one,
or none for global figures). Query parameters can only narrow a scope; a
parameter that points outside it is a ``ScopeDenied`` (403), never an empty
answer that hides the refusal.

| role           | rows                                    | per-learner rows |
|----------------|-----------------------------------------|------------------|
| platform_admin | every tenant, or the one it picks       | yes              |
| company_admin  | its tenant                              | yes              |
| program_owner  | learners active in programs it owns     | yes              |
| manager        | its direct reports (org_links)          | yes              |
| mentor         | its assigned learners, aggregated only  | no (403)         |
| learner        | itself                                  | yes (itself)     |

Survey free text is shown to company_admin and platform_admin only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.reports.org import OrgRegistry
from api.security import Principal

ADMIN_ROLES = ("platform_admin", "company_admin")
# tables whose rows carry the learner's program and cohort
READ_TABLES = (
    "learner_daily",
    "learner_scores",
    "learner_week",
    "learner_firsts",
    "learner_latest",
)


class ScopeDenied(PermissionError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Scope:
    role: str
    actor_id: str
    tenant_id: str | None  # None: every tenant (platform_admin only)
    learners: tuple[str, ...] | None  # None: every learner of the tenant(s)
    programs: tuple[str, ...] | None  # None: every program
    program_id: str | None = None  # narrowing filters asked for (inside the scope)
    cohort_id: str | None = None
    user_id: str | None = None
    per_learner: bool = True  # may list learners one by one
    free_text: bool = False  # may read survey free text

    def filter(self, table: str = "learner_daily", learner_col: str = "user_id") -> Filter:
        """WHERE conditions (parameterised) restricting ``table`` to this scope.

        ``READ_TABLES`` carry program and cohort per row;
        ``events`` rows often do not (a sign-in has no program), so there a
        program or cohort restricts to the learners active in it instead.
        """
        f = Filter()
        if self.tenant_id is not None:
            f.add("tenant_id = {s_tenant:String}", s_tenant=self.tenant_id)
        if self.learners is not None:
            f.add(f"{learner_col} IN {{s_learners:Array(String)}}", s_learners=list(self.learners))
        if self.user_id is not None:
            f.add(f"{learner_col} = {{s_user:String}}", s_user=self.user_id)
        row_has_program = table in READ_TABLES
        conds: list[str] = []
        params: dict[str, Any] = {}
        if self.programs is not None:
            conds.append("program_id IN {s_programs:Array(String)}")
            params["s_programs"] = list(self.programs)
        if self.program_id is not None:
            conds.append("program_id = {s_program:String}")
            params["s_program"] = self.program_id
        if self.cohort_id is not None:
            conds.append("cohort_id = {s_cohort:String}")
            params["s_cohort"] = self.cohort_id
        if conds:
            if row_has_program:
                f.add(" AND ".join(conds), **params)
            else:
                tenant = "tenant_id = {s_tenant:String} AND " if self.tenant_id else ""
                f.add(
                    f"{learner_col} IN (SELECT user_id FROM learner_firsts WHERE {tenant}"
                    + " AND ".join(conds)
                    + ")",
                    **params,
                )
        return f

    def tenant_filter(self) -> Filter:
        """The scope's tenant, or every tenant for a platform-wide scope: for
        rows kept per tenant rather than per learner (freshness, exports,
        audit rows, cohort assignments)."""
        f = Filter()
        f.add("{t:String} = '' OR tenant_id = {t:String}", t=self.tenant_id or "")
        return f


class Filter:
    """A conjunction of SQL conditions with their bound parameters. Conditions
    are fixed text written here; every value travels as a parameter."""

    def __init__(self) -> None:
        self.conds: list[str] = []
        self.params: dict[str, Any] = {}

    def add(self, cond: str, **params: Any) -> None:
        self.conds.append(f"({cond})")
        self.params.update(params)

    @property
    def sql(self) -> str:
        return " AND ".join(self.conds) if self.conds else "1"


def compute_scope(
    principal: Principal,
    org: OrgRegistry,
    *,
    tenant_id: str | None = None,
    program_id: str | None = None,
    cohort_id: str | None = None,
    user_id: str | None = None,
) -> Scope:
    role, me = principal.role, principal.user_id
    if "reports" not in principal.capabilities:
        raise ScopeDenied("this token has no 'reports' capability")
    if role == "platform_admin":
        tenant = tenant_id or None
    else:
        if tenant_id is not None and tenant_id != principal.tenant_id:
            raise ScopeDenied(f"tenant {tenant_id!r} is outside this token's tenant")
        tenant = principal.tenant_id
    base: dict[str, Any] = {
        "role": role,
        "actor_id": me or "",
        "tenant_id": tenant,
        "program_id": program_id,
        "cohort_id": cohort_id,
        "user_id": user_id,
        "free_text": role in ADMIN_ROLES,
    }
    if role in ADMIN_ROLES:
        return Scope(learners=None, programs=None, **base)
    if not me:
        raise ScopeDenied(f"a {role} token must name its user (skillstream token --user)")
    assert tenant is not None
    if role == "program_owner":
        owned = tuple(org.objects(tenant, "program_owner", me))
        if program_id is not None and program_id not in owned:
            raise ScopeDenied(f"program {program_id!r} is not one of your programs")
        return Scope(learners=None, programs=owned, **base)
    if role == "learner":
        if user_id is not None and user_id != me:
            raise ScopeDenied("learners see their own data only")
        return Scope(learners=(me,), programs=None, **base)
    learners = tuple(org.objects(tenant, role, me))  # manager or mentor
    if role == "mentor" and user_id is not None:
        raise ScopeDenied("mentors see aggregates over their assigned learners, not one learner")
    if user_id is not None and user_id not in learners:
        raise ScopeDenied(f"learner {user_id!r} is not one of your direct reports")
    return Scope(learners=learners, programs=None, per_learner=role != "mentor", **base)


def require_per_learner(scope: Scope) -> None:
    if not scope.per_learner:
        raise ScopeDenied(
            "mentors see aggregates only (engagement, KPIs); per-learner lists are refused"
        )
