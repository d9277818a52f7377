"""The reports' read model (sinks/migrations/0008_read_model.sql) and the
report cache (api/reports/cache.py)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from api.reports.cache import ReportCache
from sinks.migrations import migration_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("seed", [1, 2])
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


def test_reports_never_read_final_or_the_sink_tables():
    from api.reports import queries

    for fn in (queries.engagement, queries.learners, queries._learners_sql, queries.kpis):
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
