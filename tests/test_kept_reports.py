"""Results kept ready (api/reports/cache.py) and KPIs kept as figures
(api/reports/figures.py), against ground truth computed here: a kept
result never shows data older than its stated freshness; after a late
score, an erasure or a purge the next answer equals a fresh computation; a
learner moving between managers or programs moves in every kept figure."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from api.reports import figures, summaries
from api.reports.cache import ReportCache
from api.reports.common import Known, freshness
from api.reports.engagement import engagement
from api.reports.kpis import kpis
from api.reports.learners import learners
from api.reports.org import Link, OrgRegistry
from api.reports.scope import Scope, compute_scope
from api.security import Principal
from tests.support import reports_data as rd


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def keeper(rounds: list[int], clock: Clock, reads: list[int] | None = None) -> ReportCache:
    def generation() -> int:
        if reads is not None:
            reads[0] += 1
        return rounds[0]

    cache = ReportCache(generation, max_age_s=30, keep_viewed_s=300, interval_s=2, clock=clock)
    cache.refreshing = True  # as with the API's keeper thread running
    return cache


def test_one_computation_per_result_and_interval_and_none_for_unviewed_scopes():
    rounds, reads, clock = [0], [0], Clock()
    cache = keeper(rounds, clock, reads)
    assert cache.refresh_due() == 0 and reads == [0]  # nobody views: not even a count read
    calls: list[int] = []

    def compute() -> dict:
        calls.append(1)
        time.sleep(0.05)
        return {"n": len(calls)}

    key = cache.key("engagement", ("scope",), weeks=8)
    viewers = [threading.Thread(target=cache.get, args=(key, compute)) for _ in range(10)]
    for v in viewers:
        v.start()
    for v in viewers:
        v.join()
    assert len(calls) == 1  # ten first viewers, one computation
    rounds[0] += 1  # the sink wrote a round
    assert cache.get(key, compute) == {"n": 1}  # the newest kept result, no computation
    assert cache.refresh_due() == 0  # its computation started less than 2 s ago
    clock.t += 2
    assert cache.refresh_due() == 1 and cache.get(key, compute) == {"n": 2}
    rounds[0] += 5  # five rounds within the interval: one refresh
    clock.t += 1
    assert cache.refresh_due() == 0
    clock.t += 1
    assert cache.refresh_due() == 1 and cache.refresh_due() == 0 and len(calls) == 3
    clock.t += 10  # no round: nothing to do until the result is max_age_s old
    assert cache.refresh_due() == 0
    clock.t += 25
    assert cache.refresh_due() == 1 and len(calls) == 4
    clock.t += 301  # nobody viewed it for keep_viewed_s: dropped, costs nothing
    rounds[0] += 1
    assert cache.refresh_due() == 0 and len(cache) == 0
    before = reads[0]
    assert cache.refresh_due() == 0 and reads[0] == before


def test_a_failed_refresh_keeps_the_result_and_waits_an_interval():
    rounds, clock = [0], Clock()
    cache = keeper(rounds, clock)
    results: list[Any] = [{"n": 1}]

    def compute() -> dict:
        if isinstance(results[-1], Exception):
            raise results[-1]
        return results[-1]

    key = cache.key("kpis", ("s",), days=30)
    assert cache.get(key, compute) == {"n": 1}
    results.append(RuntimeError("store down"))
    rounds[0] += 1
    clock.t += 2
    assert cache.refresh_due() == 0 and cache.get(key, compute) == {"n": 1}
    results.append({"n": 2})
    assert cache.refresh_due() == 0  # tried less than an interval ago
    clock.t += 2
    assert cache.refresh_due() == 1 and cache.get(key, compute) == {"n": 2}


def routes_like(cache: ReportCache, store, report: str, scope: Scope, fn: Callable) -> dict:
    """What api/routes/reports.py does: the freshness read before the
    report's queries, the result kept under report and scope."""

    def compute() -> dict:
        return fn(Known(freshness(store, scope)))

    return cache.get(cache.key(report, scope), compute, tenant=scope.tenant_id)


def chart(store, scope: Scope, fresh=None) -> dict:
    return engagement(store, scope, weeks=4, sink_fresh=fresh)


def figures_of(result: dict) -> dict:
    """What a report shows, without when it was computed."""
    return {k: v for k, v in result.items() if k not in ("computed_at", "scope")}


def current_week_truth(org: rd.Org, learners: set[str]) -> dict:
    today = datetime.now(UTC).date()
    w = rd.expected_week(org, learners, rd.monday(today))
    return {"median_score": w["median"], "learners_scored": w["active"], "at_risk": w["at_risk"]}


def shown(result: dict) -> dict:
    p = result["series"][-1]
    return {k: p[k] for k in ("median_score", "learners_scored", "at_risk")}


def test_kept_charts_follow_late_scores_erasure_purge_and_manager_moves(store, tmp_path):
    from api.retention.erasure import erase_user
    from api.retention.policies import set_policy
    from api.retention.purge import purge_tenant
    from core.settings import Settings

    today = datetime.now(UTC).date()
    org = rd.build(f"t-kept-{uuid.uuid4().hex[:6]}", "k", today)
    rd.insert(store, org)
    t = org.tenant_id
    reg = OrgRegistry(store)
    reg.link_many([Link(t, *lk) for lk in rd.links(org)], actor="test", actor_role="test")
    rounds, clock = [0], Clock()
    cache = keeper(rounds, clock)
    boss = Principal(t, t, "manager", org.manager, frozenset({"reports"}))
    admin = Scope("company_admin", "boss", t, None, None)

    def manager() -> Scope:
        return compute_scope(boss, OrgRegistry(store))

    def view(scope: Scope) -> dict:
        return routes_like(cache, store, "engagement", scope, lambda f: chart(store, scope, f))

    def round_and_refresh() -> None:
        rounds[0] += 1
        clock.t += 2
        cache.refresh_due()

    assert shown(view(admin)) == current_week_truth(org, set(org.users))
    assert shown(view(manager())) == current_week_truth(org, set(org.reports))

    # a late score for one of the manager's learners: shown after the round's refresh
    u = org.reports[1]
    late = store.query(
        "SELECT * FROM learner_scores WHERE user_id = {u:String} AND day = {d:Date}",
        {"u": u, "d": today.isoformat()},
    )[0]
    store.insert("learner_scores", [{**late, "score": 97, "at_risk": 1, "version": 2}])
    org.scores[(u, today)] = (97, 1)
    before = view(admin)
    assert shown(before) != current_week_truth(org, set(org.users))  # kept: no round yet
    round_and_refresh()
    for scope, who in ((admin, set(org.users)), (manager(), set(org.reports))):
        assert shown(view(scope)) == current_week_truth(org, who)
        assert figures_of(view(scope)) == figures_of(chart(store, scope, Known(None)) | {
            "data_fresh_as_of": view(scope)["data_fresh_as_of"]})  # fmt: skip

    # a learner moves to another manager: the manager's scope is new, computed
    moved = org.reports[0]
    reg.unlink(Link(t, "manager", org.manager, moved), actor="test", actor_role="test")
    reg.link(Link(t, "manager", "other-mgr", moved), actor="test", actor_role="test")
    assert shown(view(manager())) == current_week_truth(org, set(org.reports[1:]))
    other = Principal(t, t, "manager", "other-mgr", frozenset({"reports"}))
    got = view(compute_scope(other, OrgRegistry(store)))
    assert shown(got) == current_week_truth(org, {moved})

    # an erasure: the very next answer is a fresh computation, no round needed
    erased = org.reports[2]
    erase_user(store, None, tenant_id=t, user_id=erased, actor_id="boss",
               actor_role="company_admin")  # fmt: skip
    org.scores = {k: v for k, v in org.scores.items() if k[0] != erased}
    assert shown(view(admin)) == current_week_truth(org, set(org.users) - {erased})
    assert shown(view(manager())) == current_week_truth(org, set(org.reports[1:]) - {erased})

    # a purge of the aggregates: the same
    settings = Settings(SKILLSTREAM_RUN_DIR=tmp_path / "run")
    set_policy(store, settings, tenant_id=t, subject="aggregates", days=1, actor_id="boss",
               actor_role="company_admin")  # fmt: skip
    assert view(admin)["series"][-2]["learners_scored"] > 0  # last week's scores
    purge_tenant(store, settings, None, t)
    assert view(admin)["series"][-2]["learners_scored"] == 0  # gone at once
    assert view(admin)["series"] == chart(store, admin)["series"]


def test_a_kept_result_never_shows_data_older_than_it_says(store):
    """While events land (each a new learner's sign-in), every kept KPI
    answer counts every learner whose event was received by its stated
    freshness: the data are at least as fresh as the answer says."""
    t = f"t-fresh-{uuid.uuid4().hex[:6]}"
    rounds, clock = [0], Clock()
    cache = keeper(rounds, clock)
    scope = Scope("company_admin", "boss", t, None, None)
    received: dict[str, datetime] = {}
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 40:
            at = datetime.now(UTC) - timedelta(seconds=1)
            user = f"u{i:03d}"
            store.insert("events", [rd._event(t, f"e{i}", user, "session_started", at, None, {})])
            received[user] = at
            rounds[0] += 1
            i += 1
            time.sleep(0.01)

    w = threading.Thread(target=writer)
    w.start()
    answers = []
    try:
        while w.is_alive():
            clock.t += 2
            cache.refresh_due()
            answers.append(routes_like(cache, store, "kpis", scope, lambda f: kpis(
                store, scope, sink_fresh=f)))  # fmt: skip
    finally:
        stop.set()
        w.join()
    stated = [a for a in answers if a["data_fresh_as_of"]]
    assert len(stated) >= 3
    for a in stated:
        fresh = datetime.fromisoformat(a["data_fresh_as_of"].replace("Z", "+00:00"))
        wau = {k["key"]: k for k in a["kpis"]}["wau"]["value"]
        assert wau >= sum(1 for at in list(received.values()) if at <= fresh)


def test_report_figures_are_the_reports_kept_and_follow_program_moves_and_erasure(store):
    """Figures per tenant and program equal the dashboard's reports (KPIs,
    chart, at-risk list) computed afresh for a company admin and a program
    owner; they are read back by a new process (a restart); a learner moving
    programs moves in them after the next round; an erasure drops them."""
    from api.retention.erasure import erase_user

    today = datetime.now(UTC).date()
    org = rd.build(f"t-fig-{uuid.uuid4().hex[:6]}", "f", today)
    rd.insert(store, org)
    t = org.tenant_id
    rounds, clock = [0], Clock()
    fig = figures.ReportFigures(store, lambda: rounds[0], lambda _t: None, interval_s=2,
                                clock=clock, tenants=(t,))  # fmt: skip
    admin = Scope("company_admin", "boss", t, None, None)
    owner = Scope("program_owner", org.owner, t, None, tuple(org.owned))
    fresh = {
        "kpis": lambda s: kpis(store, s, **figures.KEPT["kpis"]),
        "engagement": lambda s: engagement(store, s, **figures.KEPT["engagement"]),
        "learners": lambda s: learners(store, s, **figures.KEPT["learners"]),
    }

    def read(scope: Scope, report: str = "kpis") -> dict | None:
        return figures.read(store, scope, report, figures.KEPT[report])

    def same_as_fresh(scope: Scope) -> None:
        for report, compute in fresh.items():
            kept, now = read(scope, report), compute(scope)
            assert kept is not None, report
            assert json.loads(json.dumps(figures_of(now), default=str)) == json.loads(
                json.dumps(figures_of(kept), default=str)), report  # fmt: skip

    def run_all() -> int:
        n = 0
        while fig.refresh_one():
            n += 1
        return n

    rounds[0] += 1
    assert run_all() == 3 * 3  # three reports of the tenant and of its two programs
    for scope in (admin, owner):
        same_as_fresh(scope)
    assert read(Scope("manager", "m", t, tuple(org.reports), None)) is None
    assert figures.read(store, admin, "kpis", {"days": 7}) is None  # the dashboard's only
    newest = datetime.fromisoformat(read(admin)["data_fresh_as_of"].replace("Z", "+00:00"))
    assert figures.read(store, admin, "kpis", figures.KEPT["kpis"], newest=newest,
                        max_behind_s=40) is not None  # fmt: skip
    # the tenant's data moved on a minute (a back-fill): a first view computes
    assert figures.read(store, admin, "kpis", figures.KEPT["kpis"],
                        newest=newest + timedelta(seconds=60), max_behind_s=40) is None  # fmt: skip

    def wau(scope: Scope) -> int:
        got = read(scope)
        assert got is not None
        return {k["key"]: k for k in got["kpis"]}["wau"]["value"]

    p1 = {u for u in org.users if org.program_of[u] == org.owned[0]}
    assert wau(owner) == len(p1)  # every learner signed in 5 minutes ago
    mover = next(u for u in org.users if u not in p1)
    now = datetime.now(UTC)
    store.insert("learner_daily", [{
        "tenant_id": t, "user_id": mover, "day": today, "program_id": org.owned[0],
        "cohort_id": org.owned[0] + "-c1", "sign_ins": 1, "live_sessions": 0, "phase_advances": 0,
        "submissions": 0, "lessons_completed": 0, "active_minutes": 5, "completions": 0,
        "events": 1, "version": 1, "updated_at": now}])  # fmt: skip
    store.insert("events", [rd._event(t, f"{mover}-late", mover, "session_started",
                                      now, org.owned[0], {})])  # fmt: skip
    rounds[0] += 1
    assert run_all() == 0  # planned at most once per interval
    clock.t += 2
    assert run_all() == 3 * 3  # the tenant has newer data: all its figures
    assert wau(owner) == len(p1) + 1  # the mover counts in its new program
    same_as_fresh(owner)

    # a restart: a new process's first view reads the rows, not the statements
    restarted = ReportCache(lambda: 0, clock=clock)
    got = restarted.get(restarted.key("kpis", owner), lambda: {"computed": True}, tenant=t,
                        first=lambda: read(owner))  # fmt: skip
    assert "computed" not in got and got["kpis"] == kpis(store, owner, days=30)["kpis"]

    before = summaries.deletions(t)
    erase_user(store, None, tenant_id=t, user_id=mover, actor_id="boss",
               actor_role="company_admin")  # fmt: skip
    assert summaries.deletions(t) > before
    assert all(read(s, r) is None for s in (admin, owner) for r in figures.KEPT)
    clock.t += 2
    rounds[0] += 1
    run_all()
    assert wau(owner) == len(p1)
    same_as_fresh(owner)
    same_as_fresh(admin)


def test_a_subjects_links_are_reused_a_second_and_dropped_at_a_local_write(store):
    """Scopes read the org data on every request: a subject's links are
    reused for ORG_CACHE_S, a link written by this process shows at once,
    one written by another process (straight into the table) within it."""
    from api.reports.org import ORG_CACHE_S

    t = f"t-org-{uuid.uuid4().hex[:6]}"
    reg = OrgRegistry(store)
    reg.link(Link(t, "manager", "m", "u1"), actor="test", actor_role="test")
    assert reg.objects(t, "manager", "m") == ["u1"]
    store.insert("org_links", [{
        "tenant_id": t, "relation": "manager", "subject_id": "m", "object_id": "u2",
        "deleted": 0, "changed_by": "elsewhere", "changed_at": datetime.now(UTC),
        "version": time.time_ns()}])  # fmt: skip
    assert OrgRegistry(store).objects(t, "manager", "m") == ["u1"]  # reused
    time.sleep(ORG_CACHE_S + 0.1)
    assert OrgRegistry(store).objects(t, "manager", "m") == ["u1", "u2"]
    reg.unlink(Link(t, "manager", "m", "u1"), actor="test", actor_role="test")
    assert OrgRegistry(store).objects(t, "manager", "m") == ["u2"]  # at once
