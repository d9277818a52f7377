"""Seed 003's KPIs that our events support, over the last days: each figure
one query (its SQL text below, formatted with the scope's filter) and one
item with its numerator, denominator and definition. The readiness delta is
also given per calendar term (api/reports/terms.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.reports import terms
from api.reports.common import FreshFn, describe, freshness, iso, together
from api.reports.scope import Filter, Scope
from sinks.store import Store

IN_WINDOW = "event_timestamp >= {since:DateTime64(3)}"
MENTEES = (
    "SELECT DISTINCT tenant_id, object_id FROM org_links FINAL"
    " WHERE relation = 'mentor' AND deleted = 0 AND {fo}"
)
ASSESSED = f"event_name = 'assessment_completed' AND readiness_score IS NOT NULL AND {IN_WINDOW}"
LOW_READINESS = 60

# Students first seen in the window, and those onboarded within 24 h.
ONBOARDING = """
    SELECT count() AS den,
           countIf(ob > toDateTime64(0, 3) AND ob <= fs + INTERVAL 24 HOUR) AS num
    FROM (
        SELECT tenant_id, learner_id, min(first_seen) AS fs, argMinMerge(persona) AS who,
               minIfMerge(onboarded) AS ob
        FROM learner_event_firsts
        WHERE {where} AND learner_id IN (
            SELECT learner_id FROM learner_event_firsts
            WHERE {where} AND first_seen >= {{since:DateTime64(3)}}
              AND first_seen <= {{now:DateTime64(3)}})
        GROUP BY tenant_id, learner_id
    ) WHERE fs >= {{since:DateTime64(3)}} AND fs <= {{now:DateTime64(3)}} AND who = 'student'
"""
# One pass over the window's KPI events, per learner: resume-to-roadmap and
# the window's readiness delta. Counts are of distinct event ids (the table
# may briefly hold a replay).
KPI_WINDOW = """
    SELECT countIf(resumes > 0) AS resume_den,
           countIf(resumes > 0 AND arrayExists(
               x -> x >= resume AND x <= resume + INTERVAL 14 DAY, plans)) AS resume_num,
           countIf(assessed >= 2) AS ready_n,
           avgIf(last_r - first_r, assessed >= 2) AS ready_delta
    FROM (
        SELECT tenant_id, learner_id,
               countIf(event_name = 'resume_parsed') AS resumes,
               minIf(event_timestamp, event_name = 'resume_parsed') AS resume,
               groupArrayIf(event_timestamp, event_name = 'action_plan_accepted') AS plans,
               uniqExactIf(event_id, {assessed}) AS assessed,
               argMinIf(readiness_score, event_timestamp, {assessed}) AS first_r,
               argMaxIf(readiness_score, event_timestamp, {assessed}) AS last_r
        FROM kpi_events
        WHERE {where} AND learner_id != ''
          AND event_name IN ('resume_parsed', 'action_plan_accepted', 'assessment_completed')
          AND {in_window} AND event_timestamp <= {{now:DateTime64(3)}}
        GROUP BY tenant_id, learner_id
    )
"""
# Distinct learners with a counted event in the last 7 days, and in the 7
# before.
WAU = """
    SELECT uniqExactIf((tenant_id, learner_id), event_timestamp > {{wau_since:DateTime64(3)}})
               AS cur,
           uniqExactIf((tenant_id, learner_id), event_timestamp <= {{wau_since:DateTime64(3)}})
               AS prev
    FROM events_by_time
    WHERE {where} AND event_timestamp > {{wau_prev:DateTime64(3)}}
      AND event_timestamp <= {{now:DateTime64(3)}}
"""
# Advisee activation: learners assigned to a mentor (inside the scope) who
# signed in during the last 30 days.
ACTIVATION = """
    SELECT count() AS den, countIf((tenant_id, object_id) IN (
               SELECT tenant_id, learner_id FROM events_by_time
               WHERE {where} AND event_name = 'session_started'
                 AND event_timestamp > {{act_since:DateTime64(3)}}
                 AND event_timestamp <= {{now:DateTime64(3)}}
                 AND (tenant_id, learner_id) IN ({mentees}))) AS num
    FROM ({mentees})
"""
# Roadmap tasks due in the window, and those completed by their due date. A
# task is (learner, plan, task id); its due date is the newest dated
# assignment's, else the one its completion carries; a task without any due
# date cannot be late and is not counted.
ADHERENCE = """
    SELECT count() AS den, countIf(completions > 0 AND done <= due) AS num
    FROM (
        SELECT ifNull(argMaxIf(due_at, event_timestamp,
                               event_name = 'roadmap_task_assigned' AND due_at IS NOT NULL),
                      minIf(due_at, event_name = 'task_completion_logged')) AS due,
               countIf(event_name = 'task_completion_logged') AS completions,
               minIf(event_timestamp, event_name = 'task_completion_logged') AS done
        FROM task_progress
        WHERE {where} AND task_key IN (
            -- a task's due date is one of its rows': only tasks with one in
            -- the window can be due in it
            SELECT task_key FROM task_progress
            WHERE {where} AND due_at >= {{since:DateTime64(3)}}
              AND due_at <= {{now:DateTime64(3)}})
        GROUP BY task_key
    ) WHERE due >= {{since:DateTime64(3)}} AND due <= {{now:DateTime64(3)}}
"""
# Median over sessions of the time spent in the financial planner (each
# visit's duration counted once, however often it was replayed).
PLANNER_TIME = """
    SELECT count() AS sessions, quantileExactInclusive(0.5)(total) AS median_ms
    FROM (
        SELECT sum(ms) AS total FROM (
            SELECT tenant_id, learner_id, session_id, event_id, any(duration_ms) AS ms
            FROM planner_time
            WHERE {where} AND {in_window} AND event_timestamp <= {{now:DateTime64(3)}}
            GROUP BY tenant_id, learner_id, session_id, event_id
        ) GROUP BY tenant_id, learner_id, session_id
    )
"""
# Readiness delta (last − first assessment per learner with two or more) in
# the term starting at ``start`` and the one before, starting at ``prev``.
READINESS_BY_TERM = """
    SELECT countIf(n_cur >= 2) AS cur_n, avgIf(last_cur - first_cur, n_cur >= 2) AS cur,
           countIf(n_prev >= 2) AS prev_n, avgIf(last_prev - first_prev, n_prev >= 2) AS prev
    FROM (
        SELECT tenant_id, learner_id,
               uniqExactIf(event_id, cur) AS n_cur, uniqExactIf(event_id, NOT cur) AS n_prev,
               argMinIf(readiness_score, event_timestamp, cur) AS first_cur,
               argMaxIf(readiness_score, event_timestamp, cur) AS last_cur,
               argMinIf(readiness_score, event_timestamp, NOT cur) AS first_prev,
               argMaxIf(readiness_score, event_timestamp, NOT cur) AS last_prev
        FROM (SELECT *, event_timestamp >= toDateTime64({{start:Date}}, 3) AS cur
              FROM kpi_events
              WHERE {where} AND event_name = 'assessment_completed' AND learner_id != ''
                AND readiness_score IS NOT NULL
                AND event_timestamp >= toDateTime64({{prev:Date}}, 3)
                AND event_timestamp <= {{now:DateTime64(3)}})
        GROUP BY tenant_id, learner_id
    )
"""
# Cohort interventions (``cohort_assessment_assigned`` with a cohort) in the
# window: per intervention, the cohort's learners (in scope) whose latest
# readiness at the intervention was under ``LOW_READINESS``, and of the
# cohort those whose latest readiness now is; summed.
INTERVENTIONS = """
    WITH
      iv AS (SELECT DISTINCT tenant_id, cohort_id AS cohort, event_timestamp AS at
             FROM kpi_events
             WHERE event_name = 'cohort_assessment_assigned' AND cohort_id != ''
               AND {tenant}
               AND event_timestamp >= {{since:DateTime64(3)}}
               AND event_timestamp <= {{now:DateTime64(3)}}),
      members AS (SELECT DISTINCT tenant_id, user_id, cohort_id AS cohort FROM learner_firsts
                  WHERE {where} AND cohort_id != ''),
      scores AS (SELECT tenant_id, learner_id AS user_id,
                        groupArray((event_timestamp, assumeNotNull(readiness_score))) AS hist
                 FROM kpi_events
                 WHERE event_name = 'assessment_completed' AND learner_id != ''
                   AND readiness_score IS NOT NULL
                   AND event_timestamp <= {{now:DateTime64(3)}}
                   AND {tenant}
                 GROUP BY tenant_id, user_id)
    SELECT countIf(before < {{low:Float64}}) AS den, countIf(latest < {{low:Float64}}) AS after
    FROM (
        SELECT arraySort(x -> x.1, arrayFilter(x -> x.1 <= iv.at, s.hist)) AS upto,
               if(empty(upto), nan, upto[-1].2) AS before,
               arraySort(x -> x.1, s.hist)[-1].2 AS latest
        FROM iv
        INNER JOIN members AS m ON m.tenant_id = iv.tenant_id AND m.cohort = iv.cohort
        INNER JOIN scores AS s ON s.tenant_id = m.tenant_id AND s.user_id = m.user_id
    )
"""


# Data freshness SLA (platform-wide, platform admins only): O*NET releases
# whose first import job completed in the window, and those completed within
# 48 h of the release's publication (data_import_completed rows of
# kpi_events: migration 0021). A release is (dataset, released_at); a job
# run twice, or its event replayed, counts once (its first completion).
FRESHNESS_SLA_HOURS = 48
DATA_FRESHNESS = """
    SELECT count() AS den, countIf(done <= released + INTERVAL {hours:UInt32} HOUR) AS num
    FROM (
        SELECT assumeNotNull(released_at) AS released, min(assumeNotNull(completed_at)) AS done
        FROM kpi_events
        WHERE event_name = 'data_import_completed' AND dataset = {dataset:String}
          AND released_at IS NOT NULL AND completed_at IS NOT NULL
          AND event_timestamp <= {now:DateTime64(3)}
          AND event_timestamp >= {since:DateTime64(3)} - INTERVAL 30 DAY
        GROUP BY released
    ) WHERE done >= {since:DateTime64(3)} AND done <= {now:DateTime64(3)}
"""


def kpis(
    store: Store,
    scope: Scope,
    *,
    days: int = 30,
    now: datetime | None = None,
    sink_fresh: FreshFn | None = None,
    default_term: str = "quarter",
) -> dict[str, Any]:
    """The KPIs over the last ``days`` days; the readiness delta also per
    term (the tenant's, else ``default_term``)."""
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
    by_term, iv, onboarding, (resume, readiness), wau, activation, adherence, planner, fresh = (
        together(
            lambda: _readiness_by_term(store, scope, f, now, default_term),
            lambda: _interventions(store, scope, now - timedelta(days=days), now),
            lambda: _onboarding(store, f, p),
            lambda: _kpi_window(store, f, p),
            lambda: _wau(store, f, p),
            lambda: _activation(store, scope, f, p),
            lambda: _adherence(store, f, p),
            lambda: _planner_time(store, f, p),
            lambda: freshness(store, scope, sink_fresh),
        )
    )
    items = [onboarding, adherence, resume, planner, activation, readiness, by_term, iv, wau]
    if scope.role == "platform_admin":
        items.append(data_freshness(store, now - timedelta(days=days), now))
    _windows(items, days, by_term["term"])
    del by_term["term"]
    return {
        "scope": describe(scope),
        "window_days": days,
        "kpis": items,
        "computed_at": iso(datetime.now(UTC)),
        "data_fresh_as_of": iso(fresh),
    }


def data_freshness(store: Store, since: datetime, now: datetime) -> dict[str, Any]:
    """Seed 003's platform-wide "% of O*NET updates processed within 48 hours
    of release", from ``data_import_completed`` (data-import job telemetry):
    platform-wide whatever tenant the job reported under, so for platform
    admins only (kpis() adds it for them; figures.read adds it to kept ones)."""
    p = {"since": since, "now": now, "dataset": "onet", "hours": FRESHNESS_SLA_HOURS}
    row = store.query(DATA_FRESHNESS, p)[0]
    return _ratio_kpi("onet_updates_within_48h", "Data freshness SLA (O*NET within 48 h)",
                      "platform", int(row["num"]), int(row["den"]),
                      "% of O*NET updates processed within 48 hours of release: "
                      "O*NET releases whose first import job completed in the window and did so "
                      "within 48 h of the release's publication / O*NET releases whose first "
                      "import job completed in the window (data_import_completed, every "
                      "tenant)")  # fmt: skip


def _onboarding(store: Store, f: Filter, p: dict[str, Any]) -> dict[str, Any]:
    row = store.query(ONBOARDING.format(where=f.sql), p)[0]
    return _ratio_kpi("onboarding_completion_24h", "Guided onboarding completion (24 h)",
                      "student", int(row["num"]), int(row["den"]),
                      "students first seen in the window who completed onboarding "
                      "within 24 h")  # fmt: skip


def _kpi_window(
    store: Store, f: Filter, p: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Resume-to-roadmap conversion and the window's readiness delta."""
    sql = KPI_WINDOW.format(where=f.sql, assessed=ASSESSED, in_window=IN_WINDOW)
    row = store.query(sql, p)[0]
    ready_n = int(row["ready_n"])
    resume = _ratio_kpi("resume_to_roadmap_14d", "Resume-to-roadmap conversion (14 days)",
                        "career_changer", int(row["resume_num"]), int(row["resume_den"]),
                        "learners whose first resume upload in the window led to an accepted "
                        "action plan within 14 days")  # fmt: skip
    readiness = _kpi("readiness_delta", "Skill readiness delta", "student",
                     round(float(row["ready_delta"]), 2) if ready_n else None,
                     "points", None, ready_n,
                     "average change in readiness score, last minus first assessment in the "
                     "window, over learners with two or more")  # fmt: skip
    return resume, readiness


def _wau(store: Store, f: Filter, p: dict[str, Any]) -> dict[str, Any]:
    row = store.query(WAU.format(where=f.sql), p)[0]
    return _kpi("wau", "Active in the last 7 days", "platform", int(row["cur"]), "learners",
                None, None, "distinct identified learners with a counted event in the last 7 days",
                previous=int(row["prev"]))  # fmt: skip


def _activation(store: Store, scope: Scope, f: Filter, p: dict[str, Any]) -> dict[str, Any]:
    fo = scope.filter("events", learner_col="object_id")
    sql = ACTIVATION.format(where=f.sql, mentees=MENTEES.format(fo=fo.sql))
    row = store.query(sql, {**p, **fo.params})[0]
    return _ratio_kpi("advisee_activation_30d", "Advisee activation (30 days)", "advisor",
                      int(row["num"]), int(row["den"]),
                      "learners assigned to a mentor who signed in during the last "
                      "30 days")  # fmt: skip


def _adherence(store: Store, f: Filter, p: dict[str, Any]) -> dict[str, Any]:
    row = store.query(ADHERENCE.format(where=f.sql), p)[0]
    return _ratio_kpi("action_plan_adherence", "Action plan adherence", "student",
                      int(row["num"]), int(row["den"]),
                      "roadmap tasks due in the window completed by their due date / tasks due "
                      "in the window (due date from the newest dated roadmap_task_assigned, "
                      "else the completion)")  # fmt: skip


def _planner_time(store: Store, f: Filter, p: dict[str, Any]) -> dict[str, Any]:
    row = store.query(PLANNER_TIME.format(where=f.sql, in_window=IN_WINDOW), p)[0]
    n = int(row["sessions"])
    median_s = round(float(row["median_ms"]) / 1000, 1) if n else None
    return _kpi("roi_projection_engagement", "ROI projection engagement", "career_changer",
                median_s, "seconds", None, n,
                "median time in the financial planner per session, over sessions with a visit "
                "in the window")  # fmt: skip


def _readiness_by_term(
    store: Store, scope: Scope, f: Filter, now: datetime, default_term: str
) -> dict[str, Any]:
    """The readiness delta in the current calendar term (the tenant's, else
    ``default_term``), the term before as previous."""
    term = terms.tenant_term(store, scope.tenant_id, default_term)
    start = terms.term_start(now.date(), term)
    p = {**f.params, "start": start.isoformat(),
         "prev": terms.previous_start(start, term).isoformat(), "now": now}  # fmt: skip
    row = store.query(READINESS_BY_TERM.format(where=f.sql), p)[0]

    def delta(n: str, v: str) -> float | None:
        return round(float(row[v]), 2) if int(row[n]) else None

    item = _kpi("readiness_delta_term", f"Skill readiness delta this {term}", "student",
                delta("cur_n", "cur"), "points", None, int(row["cur_n"]),
                f"average change in readiness score, last minus first assessment in the current "
                f"calendar {term} (UTC), over learners with two or more; previous: the {term} "
                "before", previous=delta("prev_n", "prev"))  # fmt: skip
    return {**item, "term": term}


def _interventions(store: Store, scope: Scope, since: datetime, now: datetime) -> dict[str, Any]:
    f = scope.filter("learner_firsts")
    t = scope.tenant_filter()
    p = {**f.params, **t.params, "since": since, "now": now, "low": LOW_READINESS}
    row = store.query(INTERVENTIONS.format(where=f.sql, tenant=t.sql), p)[0]
    den = int(row["den"])
    return _ratio_kpi("intervention_effectiveness", "Intervention effectiveness", "advisor",
                      den - int(row["after"]), den,
                      f"after each cohort assessment assignment in the window: (cohort learners "
                      f"under readiness {LOW_READINESS} before it − those under it now) / those "
                      "under it before; a learner's readiness is their latest "
                      "assessment")  # fmt: skip


def _ratio_kpi(
    key: str, label: str, persona: str, num: int, den: int, definition: str
) -> dict[str, Any]:
    """A KPI that is ``num`` out of ``den`` (none when ``den`` is 0)."""
    ratio = round(num / den, 4) if den else None
    return _kpi(key, label, persona, ratio, "ratio", num, den, definition)


def _windows(items: list[dict[str, Any]], days: int, term: str) -> None:
    """Each KPI's window, as the dashboard states it beside the figure."""
    fixed = {"wau": "last 7 days", "advisee_activation_30d": "last 30 days",
             "readiness_delta_term": f"this calendar {term} (UTC)"}  # fmt: skip
    for item in items:
        item["window"] = fixed.get(item["key"], f"last {days} days")


def _kpi(
    key: str,
    label: str,
    persona: str,
    value: float | int | None,
    unit: str,
    numerator: int | None,
    denominator: int | None,
    definition: str,
    previous: float | int | None = None,
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
