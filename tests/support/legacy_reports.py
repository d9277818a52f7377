"""The reports as they read the store before migration 0008's read model:
FINAL over learner_scores and learner_daily (api/reports/queries.py as of
that release, unchanged but for this docstring). The migration test holds
the read model's reports equal to these on the same rows.

Definitions (docs/reports.md):
- a week is an ISO week (Monday..Sunday, UTC); the current week is week to date;
- a learner's score in a week is their latest ``learner_scores`` row in it;
- at risk: that row's flag, or no activity for ``INACTIVE_DAYS`` days by the
  end of the week (today for the current week) — the score rule of
  streams/score.py carried forward to days without a score row;
- weekly active learners: learners with at least one counted event that week;
- programs tracked: distinct programs with activity that week;
- completion rate: learners who completed a program / learners ever active,
  both counted up to the end of the week.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from api.reports.scope import Scope
from sinks.store import Store
from streams.score import INACTIVE_DAYS

FreshFn = Callable[[str | None], datetime | None]
REDACTED = "[redacted]"
COMPONENTS = ("sign_ins", "live_sessions", "phase_advances", "submissions", "lessons_completed")


def _iso(d: datetime | None) -> str | None:
    return d.astimezone(UTC).isoformat().replace("+00:00", "Z") if d else None


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _tile(value: float | int | None, previous: float | int | None, pct: bool = True) -> dict:
    delta = None if value is None or previous is None else round(value - previous, 4)
    tile: dict[str, Any] = {"value": value, "previous": previous, "delta": delta}
    if pct:
        tile["delta_pct"] = (
            round(100 * (value - previous) / previous, 1)
            if value is not None and previous not in (None, 0)
            else None
        )
    return tile


def freshness(store: Store, scope: Scope, sink_fresh: FreshFn | None = None) -> datetime | None:
    """Newest received_at that is queryable for the scope's tenant (or any)."""
    if sink_fresh is not None:
        got = sink_fresh(scope.tenant_id)
        if got is not None:
            return got
    rows = store.query(
        "SELECT toUnixTimestamp64Milli(max(received_at)) AS ms, count() AS n FROM events"
        " WHERE ({t:String} = '' OR tenant_id = {t:String})",
        {"t": scope.tenant_id or ""},
    )
    if not rows or not int(rows[0]["n"]):
        return None
    return datetime.fromtimestamp(int(rows[0]["ms"]) / 1000, UTC)


# --- engagement ------------------------------------------------------------------
def engagement(
    store: Store,
    scope: Scope,
    *,
    weeks: int = 8,
    target: float = 70.0,
    today: date | None = None,
    sink_fresh: FreshFn | None = None,
) -> dict[str, Any]:
    today = today or datetime.now(UTC).date()
    n = max(2, weeks)  # the previous week is always needed for the deltas
    first = _monday(today) - timedelta(weeks=n - 1)
    week_list = [first + timedelta(weeks=i) for i in range(n)]
    f_scores = scope.filter("learner_scores")
    f_daily = scope.filter("learner_daily")
    p = {"start": first.isoformat(), "today": today.isoformat(), "inactive": INACTIVE_DAYS}

    scores = store.query(
        f"""
        SELECT toString(w) AS wk, count() AS learners,
               quantileExactInclusive(0.5)(s) AS median_score,
               countIf(r = 1 OR di + dateDiff('day', d, least(w + 6, {{today:Date}}))
                       >= {{inactive:UInt16}}) AS at_risk
        FROM (
            SELECT toMonday(day) AS w, tenant_id, user_id, max(day) AS d,
                   argMax(score, day) AS s, argMax(at_risk, day) AS r,
                   argMax(days_inactive, day) AS di
            FROM learner_scores FINAL
            WHERE day >= {{start:Date}} AND day <= {{today:Date}} AND {f_scores.sql}
            GROUP BY w, tenant_id, user_id
        )
        GROUP BY wk ORDER BY wk
        """,
        {**p, **f_scores.params},
    )
    activity = store.query(
        f"""
        SELECT toString(toMonday(day)) AS wk,
               uniqExactIf((tenant_id, user_id), events > 0) AS active,
               uniqExactIf((tenant_id, assumeNotNull(program_id)),
                           events > 0 AND program_id IS NOT NULL) AS programs
        FROM learner_daily FINAL
        WHERE day >= {{start:Date}} AND day <= {{today:Date}} AND {f_daily.sql}
        GROUP BY wk ORDER BY wk
        """,
        {**p, **f_daily.params},
    )
    # Completion: per learner the week of first activity and of first
    # completion (earlier weeks collapse into the first one), summed up to
    # each week in Python.
    firsts = store.query(
        f"""
        SELECT toString(greatest(toMonday(fa), {{start:Date}})) AS w_active,
               if(fc = toDate(0), '', toString(greatest(toMonday(fc), {{start:Date}}))) AS w_done,
               count() AS n
        FROM (
            SELECT tenant_id, user_id, minIf(day, events > 0) AS fa,
                   minIf(day, completions > 0) AS fc
            FROM learner_daily FINAL
            WHERE day <= {{today:Date}} AND {f_daily.sql}
            GROUP BY tenant_id, user_id
            HAVING countIf(events > 0) > 0
        )
        GROUP BY w_active, w_done
        """,
        {**p, **f_daily.params},
    )
    by_score = {r["wk"]: r for r in scores}
    by_act = {r["wk"]: r for r in activity}
    series = []
    for w in week_list:
        wk = w.isoformat()
        s, a = by_score.get(wk), by_act.get(wk)
        seen = sum(int(r["n"]) for r in firsts if r["w_active"] <= wk)
        done = sum(int(r["n"]) for r in firsts if r["w_done"] and r["w_done"] <= wk)
        series.append(
            {
                "week": wk,
                "median_score": float(s["median_score"]) if s else None,
                "target": target,
                "learners_scored": int(s["learners"]) if s else 0,
                "at_risk": int(s["at_risk"]) if s else 0,
                "active_learners": int(a["active"]) if a else 0,
                "programs_tracked": int(a["programs"]) if a else 0,
                "completion_rate": round(done / seen, 4) if seen else None,
            }
        )
    cur, prev = series[-1], series[-2]
    tiles = {
        "programs_tracked": _tile(cur["programs_tracked"], prev["programs_tracked"]),
        "median_engagement": _tile(cur["median_score"], prev["median_score"], pct=False),
        "weekly_active_learners": _tile(cur["active_learners"], prev["active_learners"]),
        "completion_rate": _tile(cur["completion_rate"], prev["completion_rate"], pct=False),
        "at_risk_learners": _tile(cur["at_risk"], prev["at_risk"]),
    }
    return {
        "scope": describe(scope),
        "weeks": weeks,
        "target": target,
        "series": series[-weeks:],
        "tiles": tiles,
        "computed_at": _iso(datetime.now(UTC)),
        "data_fresh_as_of": _iso(freshness(store, scope, sink_fresh)),
    }


# --- learners ---------------------------------------------------------------------
SORTS = {  # fixed ORDER BY text per allowed sort key (never from the request)
    "score": "sc ASC, t, u",
    "-score": "sc DESC, t, u",
    "user_id": "u ASC, t",
    "-user_id": "u DESC, t",
    "days_inactive": "di ASC, t, u",
    "-days_inactive": "di DESC, t, u",
    "at_risk": "risk ASC, sc ASC, t, u",
    "-at_risk": "risk DESC, sc ASC, t, u",
}


def learners(
    store: Store,
    scope: Scope,
    *,
    page: int = 1,
    page_size: int = 50,
    sort: str = "-at_risk",
    at_risk: bool | None = None,
    days: int = 28,
    today: date | None = None,
    sink_fresh: FreshFn | None = None,
) -> dict[str, Any]:
    """Learners with a score in the last ``days`` days: latest score, its
    components, days inactive and the at-risk flag as of today."""
    today = today or datetime.now(UTC).date()
    order = SORTS[sort]
    f = scope.filter("learner_scores")
    having = "" if at_risk is None else "HAVING risk = {want_risk:UInt8}"
    comps = ", ".join(f"argMax({c}, day) AS c_{c}" for c in COMPONENTS)
    rows = store.query(
        f"""
        SELECT tenant_id AS t, user_id AS u, toString(max(day)) AS scored_on,
               argMax(program_id, day) AS prog, argMax(cohort_id, day) AS coh,
               argMax(score, day) AS sc,
               argMax(days_inactive, day) + dateDiff('day', max(day), {{today:Date}}) AS di,
               toUInt8(argMax(at_risk, day) = 1 OR di >= {{inactive:UInt16}}) AS risk,
               {comps},
               count() OVER () AS total
        FROM learner_scores FINAL
        WHERE day > {{since:Date}} AND day <= {{today:Date}} AND {f.sql}
        GROUP BY tenant_id, user_id
        {having}
        ORDER BY {order}
        LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
        """,
        {
            "today": today.isoformat(),
            "since": (today - timedelta(days=days)).isoformat(),
            "inactive": INACTIVE_DAYS,
            "want_risk": int(bool(at_risk)),
            "limit": page_size,
            "offset": (page - 1) * page_size,
            **f.params,
        },
    )
    total = int(rows[0]["total"]) if rows else None
    if total is None:  # past the last page: still say how many there are
        total = int(
            store.query(
                f"""SELECT count() AS n FROM (
                    SELECT tenant_id, user_id, argMax(days_inactive, day)
                        + dateDiff('day', max(day), {{today:Date}}) AS di,
                        toUInt8(argMax(at_risk, day) = 1 OR di >= {{inactive:UInt16}}) AS risk
                    FROM learner_scores FINAL
                    WHERE day > {{since:Date}} AND day <= {{today:Date}} AND {f.sql}
                    GROUP BY tenant_id, user_id {having})""",
                {
                    "today": today.isoformat(),
                    "since": (today - timedelta(days=days)).isoformat(),
                    "inactive": INACTIVE_DAYS,
                    "want_risk": int(bool(at_risk)),
                    **f.params,
                },
            )[0]["n"]
        )
    items = [_learner_item(r) for r in rows]
    return {
        "scope": describe(scope),
        "items": items,
        "page": page,
        "page_size": page_size,
        "total": total,
        "sort": sort,
        "computed_at": _iso(datetime.now(UTC)),
        "data_fresh_as_of": _iso(freshness(store, scope, sink_fresh)),
    }


def _learner_item(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_id": r["t"],
        "user_id": r["u"],
        "program_id": r["prog"],
        "cohort_id": r["coh"],
        "scored_on": r["scored_on"],
        "score": int(r["sc"]),
        "at_risk": bool(int(r["risk"])),
        "days_inactive": int(r["di"]),
        "components": {c: int(r[f"c_{c}"]) for c in COMPONENTS},
    }


# --- KPIs (seed 003) -----------------------------------------------------------
def kpis(
    store: Store,
    scope: Scope,
    *,
    days: int = 30,
    now: datetime | None = None,
    sink_fresh: FreshFn | None = None,
) -> dict[str, Any]:
    """Seed 003's KPIs that our events support, over the last ``days`` days."""
    now = now or datetime.now(UTC)
    f = scope.filter("events", learner_col="learner_id")
    p = {
        "since": now - timedelta(days=days),
        "now": now,
        "wau_since": now - timedelta(days=7),
        "wau_prev": now - timedelta(days=14),
        "act_since": now - timedelta(days=30),
        **f.params,
    }
    ev = f"FROM events FINAL WHERE learner_id IS NOT NULL AND {f.sql}"
    onboarding = store.query(
        f"""
        SELECT count() AS den,
               countIf(ob > toDateTime64(0, 3) AND ob <= first_seen + INTERVAL 24 HOUR) AS num
        FROM (
            SELECT tenant_id, learner_id, min(event_timestamp) AS first_seen,
                   argMin(persona, event_timestamp) AS persona,
                   minIf(event_timestamp, event_name = 'student_onboarding_completed') AS ob
            {ev} AND event_timestamp <= {{now:DateTime64(3)}}
            GROUP BY tenant_id, learner_id
        ) WHERE first_seen >= {{since:DateTime64(3)}} AND persona = 'student'
        """,
        p,
    )[0]
    # the same definitions as the read model, scanned from events (issue 14's KPIs)
    adherence = store.query(
        f"""
        SELECT count() AS den, countIf(completions > 0 AND done <= due) AS num
        FROM (
            SELECT ifNull(argMaxIf(d, event_timestamp,
                                   event_name = 'roadmap_task_assigned' AND d IS NOT NULL),
                          minIf(d, event_name = 'task_completion_logged')) AS due,
                   countIf(event_name = 'task_completion_logged') AS completions,
                   minIf(event_timestamp, event_name = 'task_completion_logged') AS done
            FROM (SELECT *, parseDateTime64BestEffortOrNull(
                      JSONExtractString(properties, 'due_at'), 3, 'UTC') AS d
                  {ev} AND event_name IN ('roadmap_task_assigned', 'task_completion_logged'))
            GROUP BY tenant_id, learner_id, ifNull(plan_id, ''),
                     JSONExtractString(properties, 'task_id')
        ) WHERE due >= {{since:DateTime64(3)}} AND due <= {{now:DateTime64(3)}}
        """,
        p,
    )[0]
    planner = store.query(
        f"""
        SELECT count() AS sessions, quantileExactInclusive(0.5)(total) AS median_ms
        FROM (
            SELECT sum(greatest(0, JSONExtractInt(properties, 'duration_ms'))) AS total
            {ev} AND event_name = 'career_changer_financial_planner_viewed'
              AND event_timestamp >= {{since:DateTime64(3)}}
              AND event_timestamp <= {{now:DateTime64(3)}}
            GROUP BY tenant_id, learner_id,
                     if(JSONExtractString(properties, 'session_id') = '',
                        concat('visit:', event_id), JSONExtractString(properties, 'session_id'))
        )
        """,
        p,
    )[0]
    sessions = int(planner["sessions"])
    resume = store.query(
        f"""
        SELECT count() AS den,
               countIf(arrayExists(x -> x >= resume AND x <= resume + INTERVAL 14 DAY, plans))
                   AS num
        FROM (
            SELECT tenant_id, learner_id,
                   minIf(event_timestamp, event_name = 'resume_parsed') AS resume,
                   groupArrayIf(event_timestamp, event_name = 'action_plan_accepted') AS plans
            {ev} AND event_name IN ('resume_parsed', 'action_plan_accepted')
              AND event_timestamp >= {{since:DateTime64(3)}}
              AND event_timestamp <= {{now:DateTime64(3)}}
            GROUP BY tenant_id, learner_id
            HAVING countIf(event_name = 'resume_parsed') > 0
        )
        """,
        p,
    )[0]
    readiness = store.query(
        f"""
        SELECT count() AS learners, avg(last - first) AS delta
        FROM (
            SELECT tenant_id, learner_id,
                   argMin(readiness_score, event_timestamp) AS first,
                   argMax(readiness_score, event_timestamp) AS last
            {ev} AND event_name = 'assessment_completed' AND readiness_score IS NOT NULL
              AND event_timestamp >= {{since:DateTime64(3)}}
              AND event_timestamp <= {{now:DateTime64(3)}}
            GROUP BY tenant_id, learner_id
            HAVING count() >= 2
        )
        """,
        p,
    )[0]
    wau = store.query(
        f"""
        SELECT uniqExactIf((tenant_id, learner_id), event_timestamp > {{wau_since:DateTime64(3)}})
                   AS cur,
               uniqExactIf((tenant_id, learner_id), event_timestamp <= {{wau_since:DateTime64(3)}})
                   AS prev
        {ev} AND event_timestamp > {{wau_prev:DateTime64(3)}}
          AND event_timestamp <= {{now:DateTime64(3)}}
        """,
        p,
    )[0]
    # Advisee activation: learners assigned to a mentor (inside the scope) who
    # signed in during the last 30 days.
    fo = scope.filter("events", learner_col="object_id")
    assigned = store.query(
        f"""
        SELECT DISTINCT tenant_id, object_id AS learner_id FROM org_links FINAL
        WHERE relation = 'mentor' AND deleted = 0 AND {fo.sql}
        """,
        fo.params,
    )
    active_ids: set[tuple[str, str]] = set()
    if assigned:
        rows = store.query(
            f"""
            SELECT DISTINCT tenant_id, learner_id {ev} AND event_name = 'session_started'
              AND event_timestamp > {{act_since:DateTime64(3)}}
              AND event_timestamp <= {{now:DateTime64(3)}}
            """,
            p,
        )
        active_ids = {(r["tenant_id"], r["learner_id"]) for r in rows}
    act_den = len(assigned)
    act_num = sum(1 for r in assigned if (r["tenant_id"], r["learner_id"]) in active_ids)

    def ratio(num: int, den: int) -> float | None:
        return round(num / den, 4) if den else None

    items = [
        _kpi("onboarding_completion_24h", "Guided onboarding completion (24 h)", "student",
             ratio(int(onboarding["num"]), int(onboarding["den"])), "ratio",
             int(onboarding["num"]), int(onboarding["den"]),
             "students first seen in the window who completed onboarding within 24 h"),
        _kpi("action_plan_adherence", "Action plan adherence", "student",
             ratio(int(adherence["num"]), int(adherence["den"])), "ratio",
             int(adherence["num"]), int(adherence["den"]),
             "roadmap tasks due in the window completed by their due date / tasks due in the "
             "window (due date from the newest dated roadmap_task_assigned, else the completion)"),
        _kpi("resume_to_roadmap_14d", "Resume-to-roadmap conversion (14 days)",
             "career_changer", ratio(int(resume["num"]), int(resume["den"])), "ratio",
             int(resume["num"]), int(resume["den"]),
             "learners whose first resume upload in the window led to an accepted action "
             "plan within 14 days"),
        _kpi("roi_projection_engagement", "ROI projection engagement", "career_changer",
             round(float(planner["median_ms"]) / 1000, 1) if sessions else None, "seconds",
             None, sessions,
             "median time in the financial planner per session, over sessions with a visit "
             "in the window"),
        _kpi("advisee_activation_30d", "Advisee activation (30 days)", "advisor",
             ratio(act_num, act_den), "ratio", act_num, act_den,
             "learners assigned to a mentor who signed in during the last 30 days"),
        _kpi("readiness_delta", "Skill readiness delta", "student",
             round(float(readiness["delta"]), 2) if int(readiness["learners"]) else None,
             "points", None, int(readiness["learners"]),
             "average change in readiness score, last minus first assessment in the window, "
             "over learners with two or more"),
        _kpi("wau", "Weekly active users", "platform", int(wau["cur"]), "learners",
             None, None, "distinct identified learners with a counted event in the last 7 days",
             previous=int(wau["prev"])),
    ]  # fmt: skip
    return {
        "scope": describe(scope),
        "window_days": days,
        "kpis": items,
        "computed_at": _iso(datetime.now(UTC)),
        "data_fresh_as_of": _iso(freshness(store, scope, sink_fresh)),
    }


def _kpi(
    key: str,
    label: str,
    persona: str,
    value: float | int | None,
    unit: str,
    numerator: int | None,
    denominator: int | None,
    definition: str,
    previous: int | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": key,
        "label": label,
        "persona": persona,
        "value": value,
        "unit": unit,
        "numerator": numerator,
        "denominator": denominator,
        "definition": definition,
    }
    if previous is not None:
        out["previous"] = previous
    return out


def describe(scope: Scope) -> dict[str, Any]:
    """What the response covers, so a screen or file can say it."""
    return {
        "role": scope.role,
        "tenant_id": scope.tenant_id,
        "learners": None if scope.learners is None else len(scope.learners),
        "programs": None if scope.programs is None else list(scope.programs),
        "program_id": scope.program_id,
        "cohort_id": scope.cohort_id,
        "user_id": scope.user_id,
        "aggregated_only": not scope.per_learner,
    }
