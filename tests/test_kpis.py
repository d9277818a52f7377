"""KPIs added by issue 14, against ground truth computed here: the readiness
delta per term (api/reports/terms.py: calendar terms per tenant, default
quarter) and intervention effectiveness."""

from __future__ import annotations

import os
import statistics
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from api.reports import terms
from api.reports.kpis import kpis as all_kpis
from api.reports.scope import Scope
from tests.support import reports_data as rd
from tests.support.stack import cli


def start_of(day: date, months: int) -> date:
    """The term's first day, written out independently of terms.term_start."""
    first_month = ((day.month - 1) // months) * months + 1
    return date(day.year, first_month, 1)


def at(d: date, hours: float) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(hours=hours)


@pytest.mark.parametrize("term,months", [("quarter", 3), ("month", 1), ("half", 6), ("year", 12)])
def test_readiness_delta_per_term_matches_ground_truth(store, term, months):
    tid = f"t_{uuid.uuid4().hex[:10]}"
    store.insert("tenants", [{"tenant_id": tid, "name": tid, "write_key_hash": "", "pii_salt": "",
                              "capabilities": [], "created_at": datetime.now(UTC),
                              "updated_at": datetime.now(UTC)}])  # fmt: skip
    if term != "quarter":  # quarter: the default, nothing set
        terms.set_term(store, tid, term, actor_id="t", actor_role="t")
    now = datetime.now(UTC).replace(microsecond=0)
    cur = start_of(now.date(), months)
    prev = start_of(cur - timedelta(days=1), months)
    # per learner: (time, readiness) pairs; u3 has one assessment per term only
    plan = {
        "u1": [(at(cur, 1), 40.0), (now - timedelta(minutes=2), 70.0), (at(prev, 2), 30.0),
               (at(cur, 0) - timedelta(hours=1), 35.0)],
        "u2": [(at(cur, 2), 60.0), (at(cur, 3), 50.0), (now - timedelta(minutes=1), 65.0)],
        "u3": [(at(cur, 4), 90.0), (at(prev, 5), 10.0)],
        "u4": [(at(prev, 1), 20.0), (at(prev, 30), 45.0), (at(prev, 60), 50.0)],
    }  # fmt: skip
    rows = []
    for user, points in plan.items():
        for i, (ts, score) in enumerate(points):
            ev = rd._event(tid, f"{user}-{i}", user, "assessment_completed", ts, None, {})
            rows.append({**ev, "readiness_score": score})
    rows.append({**rows[0], "version": 2})  # a replay: same event, counted once
    store.insert("events", rows)

    def truth(lo: datetime, hi: datetime) -> tuple[float | None, int]:
        deltas = []
        for points in plan.values():
            inside = sorted(p for p in points if lo <= p[0] < hi and p[0] <= now)
            if len(inside) >= 2:
                deltas.append(inside[-1][1] - inside[0][1])
        return (round(statistics.mean(deltas), 2) if deltas else None), len(deltas)

    want_cur, n_cur = truth(at(cur, 0), now + timedelta(seconds=1))
    want_prev, _ = truth(at(prev, 0), at(cur, 0))
    scope = Scope(role="company_admin", actor_id="x", tenant_id=tid, learners=None, programs=None)
    got = {k["key"]: k for k in all_kpis(store, scope, now=now)["kpis"]}["readiness_delta_term"]
    assert (got["value"], got["denominator"], got.get("previous")) == (want_cur, n_cur, want_prev)
    assert term in got["label"]


@pytest.mark.stack
def test_cli_sets_and_reads_a_tenants_term(tmp_path):
    env = {**os.environ, "SKILLSTREAM_RUN_DIR": str(tmp_path / "run")}
    assert cli(env, "tenant", "create", "acme").returncode == 0
    assert cli(env, "tenant", "term", "acme").stdout.strip() == "quarter"
    assert cli(env, "tenant", "term", "acme", "--set", "month").stdout.strip() == "month"
    assert cli(env, "tenant", "term", "acme").stdout.strip() == "month"
    assert cli(env, "tenant", "term", "acme", "--set", "week").returncode != 0


def test_intervention_effectiveness_matches_ground_truth(store):
    tid = f"t_{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC).replace(microsecond=0)
    day = lambda n: now - timedelta(days=n)  # noqa: E731
    cohort_of = {"u1": "c1", "u2": "c1", "u3": "c1", "u4": "c1", "u5": "c1", "u6": "c2"}
    store.insert("learner_daily", [
        {"tenant_id": tid, "user_id": u, "day": day(20).date(), "program_id": "p",
         "cohort_id": c, "events": 1, "version": 1, "updated_at": now}
        for u, c in cohort_of.items()
    ])  # fmt: skip
    readiness = {  # (days ago, score)
        "u1": [(15, 50.0), (8, 70.0)], "u2": [(15, 40.0), (2, 55.0)], "u3": [(15, 80.0), (1, 50.0)],
        "u4": [(15, 30.0)], "u5": [], "u6": [(15, 20.0)],
    }  # fmt: skip
    interventions = [("c1", 10), ("c1", 3), ("c2", 5), ("c1", 40)]  # (cohort, days ago)
    events = []
    for u, points in readiness.items():
        for i, (ago, score) in enumerate(points):
            ev = rd._event(tid, f"{u}-a{i}", u, "assessment_completed", day(ago), "p", {})
            events.append({**ev, "readiness_score": score})
    for i, (cohort, ago) in enumerate(interventions):
        ev = rd._event(tid, f"iv{i}", "advisor-1", "cohort_assessment_assigned", day(ago), None, {})
        events.append({**ev, "cohort_id": cohort, "persona": "advisor", "assessment_id": "a1"})
    events += [{**events[0], "version": 2}, {**events[-2], "version": 2}]  # replays
    store.insert("events", events)

    def latest(u: str, upto: datetime) -> float | None:
        seen = [(day(ago), s) for ago, s in readiness[u] if day(ago) <= upto]
        return max(seen)[1] if seen else None

    den = after = 0
    for cohort, ago in interventions:
        if ago > 30:
            continue  # outside the 30-day window
        members = [u for u, c in cohort_of.items() if c == cohort]
        den += sum(1 for u in members if (latest(u, day(ago)) or 100) < 60)
        after += sum(1 for u in members if (latest(u, now) or 100) < 60)
    scope = Scope(role="company_admin", actor_id="x", tenant_id=tid, learners=None, programs=None)
    got = {k["key"]: k for k in all_kpis(store, scope, days=30, now=now)["kpis"]}
    kpi = got["intervention_effectiveness"]
    assert (kpi["numerator"], kpi["denominator"]) == (den - after, den)
    assert kpi["value"] == round((den - after) / den, 4)
    assert den > 0 and den != after  # the data exercises both sides


def _tenant(store) -> str:
    tid = f"t_{uuid.uuid4().hex[:10]}"
    store.insert("tenants", [{"tenant_id": tid, "name": tid, "write_key_hash": "", "pii_salt": "",
                              "capabilities": [], "created_at": datetime.now(UTC),
                              "updated_at": datetime.now(UTC)}])  # fmt: skip
    return tid


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def test_action_plan_adherence_is_over_assigned_tasks(store):
    tid, other = _tenant(store), _tenant(store)
    now = datetime.now(UTC).replace(microsecond=0)
    ago = lambda d: now - timedelta(days=d)  # noqa: E731
    # task -> (assignments as (assigned, due or None), completions as (done, due or None))
    tasks = {
        ("u1", "p1", "on-time"): ([(ago(20), ago(5))], [(ago(6), None)]),
        ("u1", "p1", "late"): ([(ago(20), ago(3))], [(ago(1), None)]),
        ("u1", "p1", "open"): ([(ago(20), ago(2))], []),
        ("u1", "p2", "old"): ([(ago(60), ago(40))], [(ago(41), None)]),  # due before the window
        ("u1", "p2", "future"): ([(ago(2), now + timedelta(days=3))], []),
        # moved: due 10 days ago, then re-planned to yesterday; done 5 days ago
        ("u2", "p1", "moved"): ([(ago(20), ago(10)), (ago(12), ago(1))], [(ago(5), None)]),
        ("u2", "p1", "unassigned"): ([], [(ago(8), ago(4))]),  # the completion's due date
        ("u2", "p1", "undated"): ([(ago(9), None)], [(ago(3), None)]),  # cannot be late
        ("u3", "p9", "open2"): ([(ago(15), ago(6))], []),
    }  # fmt: skip
    rows = []
    for (user, plan, task), (assigned, done) in tasks.items():
        for kind, items in (("roadmap_task_assigned", assigned), ("task_completion_logged", done)):
            for i, (at_, due) in enumerate(items):
                props = {"task_id": task, "due_at": _ms(due) if due else None}
                ev = rd._event(tid, f"{task}-{kind}-{i}", user, kind, at_, None, props)
                rows.append({**ev, "plan_id": plan})
    rows.append({**rows[0], "version": 2})  # replays of an assignment and a completion
    rows.append({**rows[1], "version": 2})
    # the same keys in another tenant: never counted here
    rows += [{**r, "tenant_id": other, "event_id": "x" + r["event_id"]} for r in rows]
    store.insert("events", rows)

    def truth(users: set[str]) -> tuple[int, int]:
        num = den = 0
        for (user, _plan, _task), (assigned, done) in tasks.items():
            if user not in users:
                continue
            dated = [(a, d) for a, d in assigned if d]
            due = max(dated)[1] if dated else min((d for _, d in done if d), default=None)
            if due is None or not ago(30) <= due <= now:
                continue
            den += 1
            num += bool(done) and min(t for t, _ in done) <= due
        return num, den

    base = {"actor_id": "x", "tenant_id": tid, "programs": None}
    for learners in (None, ("u1",), ("u2", "u3")):
        scope = Scope(role="company_admin" if learners is None else "manager",
                      learners=learners, **base)  # fmt: skip
        kpis = {k["key"]: k for k in all_kpis(store, scope, days=30, now=now)["kpis"]}
        got = kpis["action_plan_adherence"]
        num, den = truth(set(learners or ("u1", "u2", "u3")))
        assert (got["numerator"], got["denominator"]) == (num, den), learners
        assert got["value"] == round(num / den, 4)
    assert truth({"u1", "u2", "u3"}) == (3, 6)  # the data exercises every case


def test_roi_projection_engagement_is_the_median_session(store):
    tid = _tenant(store)
    now = datetime.now(UTC).replace(microsecond=0)
    ago = lambda d: now - timedelta(days=d)  # noqa: E731
    visits = [  # (user, session or None, seconds, days ago)
        ("u1", "s1", 60.0, 2), ("u1", "s1", 30.0, 2), ("u1", "s2", 20.0, 3),
        ("u2", "s3", 40.5, 5), ("u2", None, 200.0, 6), ("u2", None, 10.0, 7),
        ("u3", "s4", 999.0, 45),  # outside the 30-day window
    ]  # fmt: skip
    rows = []
    for i, (user, session, secs, days) in enumerate(visits):
        props = {"duration_ms": int(secs * 1000), "session_id": session}
        ev = rd._event(tid, f"v{i}", user, "career_changer_financial_planner_viewed", ago(days),
                       None, props)  # fmt: skip
        rows.append({**ev, "persona": "career_changer"})
    rows.append({**rows[3], "version": 2})  # a replayed visit counts once
    store.insert("events", rows)

    sessions: dict[tuple, float] = {}
    for i, (user, session, secs, days) in enumerate(visits):
        if days <= 30:
            key = (user, session or f"visit-{i}")
            sessions[key] = sessions.get(key, 0.0) + secs
    scope = Scope(role="company_admin", actor_id="x", tenant_id=tid, learners=None, programs=None)
    got = {k["key"]: k for k in all_kpis(store, scope, days=30, now=now)["kpis"]}
    kpi = got["roi_projection_engagement"]
    assert kpi["denominator"] == len(sessions) == 5
    assert kpi["value"] == round(statistics.median(sessions.values()), 1) == 40.5
    assert kpi["unit"] == "seconds"
    empty = Scope(role="company_admin", actor_id="x", tenant_id=_tenant(store), learners=None,
                  programs=None)  # fmt: skip
    none = {k["key"]: k for k in all_kpis(store, empty, now=now)["kpis"]}
    assert none["roi_projection_engagement"]["value"] is None


def test_onet_freshness_sla_is_for_platform_admins_and_matches_ground_truth(store):
    """Seed 003's "% of O*NET updates processed within 48 hours of release",
    from data_import_completed events (any tenant), against releases written
    out here: a release counts once, by its first job's completion."""
    tenants = [_tenant(store), _tenant(store)]
    now = datetime.now(UTC).replace(microsecond=0)
    ago = lambda d, h=0.0: now - timedelta(days=d) + timedelta(hours=h)  # noqa: E731
    # release published at, completions (hours after) of its jobs, in job order
    releases = {
        "r1": (ago(10), [12.0]),  # within
        "r2": (ago(20), [60.0, 70.0]),  # late, run again later: still late
        "r3": (ago(5), [47.9]),  # within, its event replayed below
        "r4": (ago(40), [10.0]),  # completed before the window
        "r5": (ago(31), [30.0]),  # released before the window, completed in it, within
        "r6": (ago(6), [48.0]),  # exactly 48 h: within
        "r7": (ago(3), [49.0]),  # late
        "r8": (ago(29), [0.5]),  # within, near the start of the window
    }
    rows = []
    for i, (name, (released, hours)) in enumerate(releases.items()):
        for j, h in enumerate(hours):
            done = released + timedelta(hours=h)
            props = {"job_id": f"{name}-{j}", "dataset": "onet", "released_at": _ms(released),
                     "started_at": _ms(done - timedelta(hours=0.25)), "completed_at": _ms(done),
                     "events_imported": 1000}  # fmt: skip
            ev = rd._event(tenants[i % 2], f"dic-{uuid.uuid4().hex}", "importer",
                           "data_import_completed", done, None, props)  # fmt: skip
            rows.append({**ev, "user_id": None, "learner_id": None, "persona": "advisor"})
    # an ISO-written release (an external importer), and a tenant's own history import
    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    ev = rd._event(tenants[0], f"dic-{uuid.uuid4().hex}", "importer", "data_import_completed",
                   ago(2), None, {"job_id": "x", "dataset": "onet", "released_at": iso(ago(4)),
                                  "completed_at": iso(ago(2))})  # fmt: skip
    rows.append({**ev, "user_id": None, "learner_id": None})
    releases["r9"] = (ago(4), [48.0])
    ev = rd._event(tenants[1], f"dic-{uuid.uuid4().hex}", "importer", "data_import_completed",
                   ago(1), None, {"job_id": "h", "dataset": "history", "released_at": _ms(ago(9)),
                                  "completed_at": _ms(ago(1))})  # fmt: skip
    rows.append({**ev, "user_id": None, "learner_id": None})
    rows.append({**rows[2], "version": 2})  # a replayed event
    store.insert("events", rows)

    since = now - timedelta(days=30)
    num = den = 0
    for released, hours in releases.values():
        first = released + timedelta(hours=min(hours))
        if since <= first <= now:
            den += 1
            num += first <= released + timedelta(hours=48)
    assert (num, den) == (6, 8)  # the data exercises every case above

    def seen(role: str, tenant: str | None) -> dict | None:
        scope = Scope(role=role, actor_id="x", tenant_id=tenant, learners=None, programs=None)
        got = {k["key"]: k for k in all_kpis(store, scope, days=30, now=now)["kpis"]}
        return got.get("onet_updates_within_48h")

    for tenant in (None, tenants[0]):  # platform-wide, whichever tenant is picked
        kpi = seen("platform_admin", tenant)
        assert kpi is not None
        assert (kpi["numerator"], kpi["denominator"]) == (num, den)
        assert kpi["value"] == round(num / den, 4) and kpi["window"] == "last 30 days"
    assert seen("company_admin", tenants[0]) is None
