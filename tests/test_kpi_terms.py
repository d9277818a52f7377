"""The readiness delta per term (api/reports/terms.py): calendar terms per
tenant (default quarter), against ground truth computed here."""

from __future__ import annotations

import os
import statistics
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from api.reports import queries, terms
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
    got = {k["key"]: k for k in queries.kpis(store, scope, now=now)["kpis"]}["readiness_delta_term"]
    assert (got["value"], got["denominator"], got.get("previous")) == (want_cur, n_cur, want_prev)
    assert term in got["label"]


def test_cli_sets_and_reads_a_tenants_term(tmp_path):
    env = {**os.environ, "SKILLSTREAM_RUN_DIR": str(tmp_path / "run")}
    assert cli(env, "tenant", "create", "acme").returncode == 0
    assert cli(env, "tenant", "term", "acme").stdout.strip() == "quarter"
    assert cli(env, "tenant", "term", "acme", "--set", "month").stdout.strip() == "month"
    assert cli(env, "tenant", "term", "acme").stdout.strip() == "month"
    assert cli(env, "tenant", "term", "acme", "--set", "week").returncode != 0
