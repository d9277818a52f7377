"""The reports' read model (sinks/migrations/0008_read_model.sql) and the
report cache (api/reports/cache.py)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.reports.cache import ReportCache
from sinks.migrations import migration_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.stack
def test_migrating_a_store_keeps_every_report(tmp_path, seed):
    """A store made by the schema before the read model, with several row
    versions per learner-day: after the migration every report (roles,
    program and cohort narrowing, sorts, at-risk filter, past the last page,
    KPIs over 7/30/90 days with replayed events) equals what the FINAL
    queries gave before it, and still does after more versions and events
    arrive through the materialized views."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.migration_check", str(tmp_path / "ch"), str(seed)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["applied"] == [v for v, _, _ in migration_files() if v > 7]
    assert got["after"] == got["before"]
    assert got["later"] == got["later_legacy"]
    assert got["later"] != got["after"]  # the new rows changed something
    listed = sum(len(v[1]) for k, v in got["after"].items() if "/learners/" in k)
    assert listed > 100


def test_closed_weeks_are_kept_until_their_rows_change(store, tmp_path):
    """The chart's closed weeks are computed once per scope and read back
    while learner_week's write count for the week is unchanged; a late
    score in a closed week, an erasure and a purge each change the chart's
    previous week exactly as computing it afresh does."""
    from api.reports.engagement import engagement
    from api.reports.scope import Scope
    from api.retention.erasure import erase_user
    from api.retention.policies import set_policy
    from api.retention.purge import purge_tenant
    from core.settings import Settings
    from tests.support import reports_data as rd

    today = datetime.now(UTC).date()
    org = rd.build(f"t-weeks-{uuid.uuid4().hex[:6]}", "w", today)
    rd.insert(store, org)
    t = org.tenant_id
    scopes = {
        "admin": Scope("company_admin", "boss", t, None, None),
        "manager": Scope("manager", org.manager, t, tuple(org.reports), None),
        "owner": Scope("program_owner", org.owner, t, None, tuple(org.owned)),
        "platform": Scope("platform_admin", "root", None, None, None),
    }

    def charts(fresh: bool = False) -> dict:
        out = {}
        for name, scope in scopes.items():
            if fresh:  # a cache: emptying it changes no other test's answers
                store.command("TRUNCATE TABLE engagement_weeks")
            r = engagement(store, scope, weeks=8, today=today)
            out[name] = (r["series"], r["tiles"])
        return out

    def previous_week(got: dict) -> dict:
        return {name: series[-2] for name, (series, _) in got.items()}

    def kept() -> int:
        rows = store.query("SELECT count() AS n FROM engagement_weeks WHERE tenant_id = {t:String}",
                           {"t": t})  # fmt: skip
        return int(rows[0]["n"])

    before = charts()
    assert kept() == 3  # the previous week (the one closed week with rows), per tenant scope
    assert charts() == before and kept() == 3  # read back, not computed again
    assert before == charts(fresh=True)

    prev = rd.monday(today) - timedelta(days=3)
    late = store.query(
        "SELECT * FROM learner_scores WHERE user_id = {u:String} AND day = {d:Date}",
        {"u": org.reports[1], "d": prev.isoformat()},
    )[0]
    store.insert("learner_scores", [{**late, "score": 99, "at_risk": 1, "version": 2}])
    after_late = charts()
    assert previous_week(after_late) != previous_week(before)
    assert after_late == charts(fresh=True)

    erase_user(store, None, tenant_id=t, user_id=org.reports[2], actor_id="boss",
               actor_role="company_admin")  # fmt: skip
    assert kept() == 0  # an erasure drops the tenant's kept weeks
    after_erasure = charts()
    assert previous_week(after_erasure) != previous_week(after_late)
    assert after_erasure == charts(fresh=True)

    settings = Settings(SKILLSTREAM_RUN_DIR=tmp_path / "run")
    set_policy(store, settings, tenant_id=t, subject="aggregates", days=1, actor_id="boss",
               actor_role="company_admin")  # fmt: skip
    assert purge_tenant(store, settings, None, t).removed["learner_week"] > 0
    after_purge = charts()
    assert previous_week(after_purge)["admin"]["learners_scored"] == 0
    assert after_purge == charts(fresh=True)


def test_reports_never_read_final_or_the_sink_tables():
    from api.reports import engagement, kpis, learners

    for fn in (engagement, learners, kpis):
        text = inspect.getsource(fn)
        assert "FINAL" not in text.replace("org_links FINAL", "")  # org data: small
        assert "FROM learner_scores" not in text and "FROM learner_daily" not in text
        assert "FROM events" not in text.replace("FROM events_by_time", "")


def test_cache_answers_from_memory_until_the_next_round():
    rounds = [0]
    cache = ReportCache(lambda: rounds[0], max_age_s=60)
    calls = []

    def compute():
        calls.append(1)
        return {"n": len(calls)}

    key = cache.key("engagement", ("scope",), weeks=8)
    assert cache.get(key, compute) == {"n": 1}
    assert cache.get(cache.key("engagement", ("scope",), weeks=8), compute) == {"n": 1}
    assert cache.get(cache.key("engagement", ("other",), weeks=8), compute) == {"n": 2}
    assert cache.get(cache.key("engagement", ("scope",), weeks=4), compute) == {"n": 3}
    rounds[0] += 1  # the sink wrote a round
    assert cache.get(cache.key("engagement", ("scope",), weeks=8), compute) == {"n": 4}


def test_cache_entries_expire_and_concurrent_misses_compute_once():
    cache = ReportCache(lambda: 0, max_age_s=0.2)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return {"n": len(calls)}

    key = cache.key("kpis", ("scope",), days=30)
    threads = [threading.Thread(target=cache.get, args=(key, slow)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    time.sleep(0.3)
    assert cache.get(key, slow) == {"n": 2}
