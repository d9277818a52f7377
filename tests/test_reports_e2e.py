"""Reports end to end: generated events → front door → Kafka → worker → sink →
ClickHouse → /v1/reports, against numbers computed here from the events
(the score formula is re-derived in this file, not imported)."""

from __future__ import annotations

import math
import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from api.security import issue_token
from schemas.examples import example_event
from tests.test_stream import post_all, start_worker, stop

pytestmark = pytest.mark.stack

# The documented formula (docs/streams.md, "Engagement score"), written out again.
WEIGHT_CAP = {
    "session_started": (0.20, 8),
    "live_session_attended": (0.25, 2),
    "program_phase_advanced": (0.15, 1),
    "assignment_submitted": (0.25, 4),
    "lesson_completed": (0.15, 6),
}
ACTIONS = [*WEIGHT_CAP, "lesson_completed", "career_match_viewed"]


def score(days: dict[date, list[str]], d: date) -> int:
    totals = {k: 0 for k in WEIGHT_CAP}
    for day, names in days.items():
        if d - timedelta(days=13) <= day <= d:
            for n in names:
                if n in totals:
                    totals[n] += 1
    raw = sum(w * min(1.0, totals[k] / cap) for k, (w, cap) in WEIGHT_CAP.items())
    return math.floor(100 * raw + 0.5 + 1e-9)


def generate(tenants: list[str], rng: random.Random, learners: int = 10, days: int = 6):
    now = datetime.now(UTC).replace(microsecond=0)
    batches, activity = [], {}
    for t in tenants:
        for i in range(learners):
            user = f"{t}-u{i}"
            per_day: dict[date, list[str]] = {}
            evs = []
            for d in range(days):
                for k in range(rng.randint(0 if i % 3 else 1, 3)):
                    at = now - timedelta(days=days - d, minutes=-10 * k)
                    name = rng.choice(ACTIONS)
                    evs.append(
                        example_event(
                            name,
                            client_event_id=f"{user}-{d}-{k}",
                            at=at,
                            user_id=user,
                            anonymous_id=f"anon-{user}",
                            program_id=f"prog-{i % 2}",
                            cohort_id=f"prog-{i % 2}-c",
                        )
                    )
                    per_day.setdefault(at.date(), []).append(name)
            activity[(t, user)] = per_day
            batches.append(evs)  # one learner per batch: events in time order
    return batches, activity


def expected_week(activity: dict, tenant: str, week: date, today: date) -> dict:
    latest = {}
    for (t, user), per_day in activity.items():
        days = [d for d in per_day if week <= d <= week + timedelta(days=6)]
        if t == tenant and days:
            latest[user] = max(days)
    scores = {u: score(activity[(tenant, u)], d) for u, d in latest.items()}
    end = min(week + timedelta(days=6), today)
    risk = [u for u, d in latest.items() if scores[u] < 40 or (end - d).days >= 7]
    return {
        "active": len(latest),
        "median": statistics.median(scores.values()) if scores else None,
        "at_risk": len(risk),
    }


def kpi_events(users: list[str]) -> tuple[list[dict], tuple[int, int], float]:
    """Task assignments and completions (one learner in two late) and
    financial-planner visits, with the KPIs they must give."""
    now = datetime.now(UTC).replace(microsecond=0)

    def task(u: str, eid: str, name: str, at: datetime, **props) -> dict:
        props = {k: v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v
                 for k, v in props.items()}  # fmt: skip
        return example_event(name, client_event_id=eid, at=at, user_id=u, anonymous_id=f"anon-{u}",
                             plan_id="plan-e2e", properties=props)  # fmt: skip

    out, num, den = [], 0, 0
    for i, u in enumerate(users):
        due = now - timedelta(days=2)
        done = due - timedelta(hours=1) if i % 2 == 0 else now - timedelta(hours=20)
        out.append(task(u, f"{u}-assign", "roadmap_task_assigned", now - timedelta(days=3),
                        task_id="t1", due_at=due))  # fmt: skip
        out.append(task(u, f"{u}-done", "task_completion_logged", done, task_id="t1"))
        num, den = num + (done <= due), den + 1
    soon = now - timedelta(hours=2)  # due in the window, never done
    out.append(task(users[0], f"{users[0]}-open", "roadmap_task_assigned",
                    now - timedelta(days=3), task_id="t2", due_at=soon))  # fmt: skip
    den += 1
    sessions: dict[str, float] = {}
    visits = [(users[0], "s-a", 30.0), (users[0], "s-a", 50.0), (users[1], "s-b", 20.0),
              (users[2], None, 100.0)]  # fmt: skip
    for k, (u, session, secs) in enumerate(visits):
        out.append(
            example_event(
                "career_changer_financial_planner_viewed",
                client_event_id=f"{u}-visit-{k}",
                at=now - timedelta(hours=k + 1),
                user_id=u,
                anonymous_id=f"anon-{u}",
                properties={"duration_ms": int(secs * 1000), "session_id": session},
            )
        )
        key = session or f"visit-{k}"
        sessions[key] = sessions.get(key, 0.0) + secs
    return out, (num, den), round(statistics.median(sessions.values()), 1)


def test_reports_match_ground_truth_through_the_pipeline(
    live_api_with_sink,
    settings,
    kafka_bootstrap,
    unique,
):
    api = live_api_with_sink
    names = [f"e{unique}a", f"e{unique}b"]
    tids, keys = {}, {}
    for n in names:
        tids[n], keys[n] = api.new_tenant(n)
    batches, activity = generate(names, random.Random(int(unique[:6], 16)))
    worker = start_worker(settings, kafka_bootstrap)

    def token(role: str, user: str | None = None) -> str:
        return issue_token(
            api.ctx.secrets.token_secret, tenant_id=tids[names[0]], tenant_name=names[0],
            role=role, user_id=user, ttl_s=600,
        )  # fmt: skip

    def get(path: str, role: str = "company_admin", user: str | None = None, **params):
        r = httpx.get(
            f"{api.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {token(role, user)}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json()

    today = datetime.now(UTC).date()
    this_week = today - timedelta(days=today.weekday())
    last_week = this_week - timedelta(days=7)
    t0 = names[0]
    want_cur = expected_week(activity, t0, this_week, today)
    want_prev = expected_week(activity, t0, last_week, today)
    learners = sorted(u for (t, u) in activity if t == t0)
    try:
        post_all(api, keys, batches)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            body = get("/v1/reports/engagement", weeks=8)
            tiles = body["tiles"]
            got = (
                tiles["weekly_active_learners"]["value"],
                tiles["weekly_active_learners"]["previous"],
                tiles["median_engagement"]["value"],
                tiles["median_engagement"]["previous"],
                tiles["at_risk_learners"]["value"],
                tiles["at_risk_learners"]["previous"],
            )
            want = (
                want_cur["active"], want_prev["active"], want_cur["median"],
                want_prev["median"], want_cur["at_risk"], want_prev["at_risk"],
            )  # fmt: skip
            if got == want:
                break
            time.sleep(1)
        assert got == want
        assert body["data_fresh_as_of"] is not None

        # a manager with three direct reports sees exactly them, with their scores
        reports = learners[:3]
        for u in reports:
            r = httpx.post(
                f"{api.url}/v1/org/links",
                json={"relation": "manager", "subject_id": "mgr-1", "object_id": u},
                headers={"Authorization": f"Bearer {token('company_admin', 'boss')}"},
                timeout=10,
            )
            assert r.status_code == 201, r.text
        items = get("/v1/reports/learners", "manager", "mgr-1", page_size=100)["items"]
        got_scores = {i["user_id"]: i["score"] for i in items}
        want_scores = {
            u: score(activity[(t0, u)], max(activity[(t0, u)]))
            for u in reports
            if activity[(t0, u)]
        }
        assert got_scores == want_scores

        # KPIs: weekly active users = learners with an event in the last 7 days
        kpis = {k["key"]: k for k in get("/v1/reports/kpis")["kpis"]}
        assert kpis["wau"]["value"] == sum(1 for u in learners if activity[(t0, u)])

        # envelope v3's events through the front door: adherence over assigned
        # tasks and the median planner session, as the tracking plan defines them
        events, want_adherence, want_median = kpi_events(learners[:4])
        post_all(api, keys, [events])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kpis = {k["key"]: k for k in get("/v1/reports/kpis")["kpis"]}
            adherence = kpis["action_plan_adherence"]
            got = ((adherence["numerator"], adherence["denominator"]),
                   kpis["roi_projection_engagement"]["value"])  # fmt: skip
            if got == (want_adherence, want_median):
                break
            time.sleep(1)
        assert got == (want_adherence, want_median)
    finally:
        stop(worker)
