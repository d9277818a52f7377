"""Analysts' SQL (api/analyst.py, POST /v1/sql, `skillstream sql`): read-only,
limited, and a tenant's analyst never sees another tenant's rows, however
the query is written."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from api import analyst
from api.security import issue_token
from tests.support.stack import cli

DATA_TABLES = ("events", "learner_daily", "learner_scores", "learner_week", "learner_latest",
               "events_by_time", "task_progress", "planner_time", "kpi_events")  # fmt: skip
NO_FINAL = ("events_by_time", "task_progress", "planner_time", "kpi_events")  # plain MergeTree


@pytest.fixture(scope="module")
def tenants(store) -> tuple[str, str]:
    """Two tenants with rows in every table the generated queries read."""
    from tests.support import reports_data as rd

    today = datetime.now(UTC).date()
    ids = (f"ta_{uuid.uuid4().hex[:8]}", f"tb_{uuid.uuid4().hex[:8]}")
    now = datetime.now(UTC)
    for i, tid in enumerate(ids):
        rd.insert(store, rd.build(tid, f"s{i}", today, n=4))
        task = rd._event(tid, f"task-{tid}", "u1", "roadmap_task_assigned", now, None,
                         {"task_id": "t1", "due_at": None})  # fmt: skip
        visit = rd._event(tid, f"visit-{tid}", "u1", "career_changer_financial_planner_viewed",
                          now, None, {"duration_ms": 1000, "session_id": "s"})  # fmt: skip
        assessed = rd._event(tid, f"assessed-{tid}", "u1", "assessment_completed", now, None,
                             {})  # fmt: skip
        store.insert("events", [{**task, "plan_id": "p"}, visit,
                                {**assessed, "readiness_score": 55.0}])  # fmt: skip
    return ids


def _run(store, sql: str, tenant: str | None, **kw) -> list[dict]:
    out = analyst.run(store, sql, tenant_id=tenant, fmt="json", max_rows=kw.get("rows", 10_000),
                      max_seconds=10)  # fmt: skip
    return [json.loads(line) for line in out.body.splitlines() if line]


def _shape(draw, table: str) -> str:
    """One query over ``table`` selecting its tenant_id as ``t``, in one of
    the ways SQL can name, nest, combine or hide a table."""
    ref = draw(st.sampled_from([table, f"default.{table}", f"`{table}`", f"`default`.`{table}`"]))
    other = draw(st.sampled_from(DATA_TABLES))
    return draw(st.sampled_from([
        f"SELECT tenant_id AS t FROM {ref}",
        f"SELECT t FROM (SELECT tenant_id AS t FROM {ref})",
        f"SELECT tenant_id AS t FROM {ref} {'' if table in NO_FINAL else 'FINAL'}",
        f"SELECT tenant_id AS t FROM {ref} UNION ALL SELECT tenant_id FROM {other}",
        f"WITH x AS (SELECT * FROM {ref}) SELECT tenant_id AS t FROM x",
        f"SELECT b.tenant_id AS t FROM {ref} AS a CROSS JOIN {other} AS b",
        f"SELECT tenant_id AS t FROM {other} WHERE tenant_id IN (SELECT tenant_id FROM {ref})",
        f"SELECT arrayJoin(groupArray(tenant_id)) AS t FROM {ref}",
        f"SELECT any(tenant_id) AS t FROM {ref} GROUP BY tenant_id WITH TOTALS",
        f"SELECT tenant_id AS t FROM {ref} WHERE 1 OR tenant_id != ''",
        f"SELECT (SELECT max(tenant_id) FROM {ref}) AS t",
        f"SELECT t FROM (SELECT tenant_id AS t FROM {ref} LIMIT 1 BY tenant_id)",
    ]))  # fmt: skip


@examples(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_query_returns_another_tenants_rows(store, tenants, data):
    mine, theirs = tenants
    sql = _shape(data.draw, data.draw(st.sampled_from(DATA_TABLES)))
    seen = {r["t"] for r in _run(store, sql, mine)}
    assert seen <= {mine, ""}, (sql, seen)  # '' : a scalar subquery over no rows
    every = {r["t"] for r in _run(store, sql, None)}  # the platform sees both
    assert theirs in every or "max(" in sql


ESCAPES = [
    "SELECT * FROM merge('default', '^events$')",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')",
    "SELECT * FROM remote('127.0.0.1', default.events)",
    "SELECT * FROM cluster('default', default.events)",
    "SELECT * FROM view(SELECT * FROM events)",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k.csv')",
    "SELECT * FROM numbers(10)",
    "SELECT * FROM system.query_log",
    "SELECT name FROM system.tables",
    "SELECT * FROM (SELECT * FROM system.parts)",
    "SELECT * FROM INFORMATION_SCHEMA.tables",
    "SELECT * FROM tenants",
    "SELECT * FROM sink_offsets",
    "SELECT * FROM learner_week_scores_mv",
    "WITH tenants AS (SELECT 1) SELECT * FROM tenants",
    "SELECT * FROM events SETTINGS additional_table_filters = {'events': '1'}",
    "SELECT * FROM events SETTINGS readonly = 0",
    "SELECT 1; DROP TABLE events",
    "INSERT INTO events (tenant_id) VALUES ('x')",
    "ALTER TABLE events DELETE WHERE 1",
    "DROP TABLE events",
    "CREATE TABLE x (a UInt8) ENGINE = Memory",
    "SYSTEM DROP MARK CACHE",
    "",
]


@pytest.mark.parametrize("sql", ESCAPES)
def test_escapes_and_writes_are_refused(store, tenants, sql):
    with pytest.raises(analyst.SqlRefused):
        analyst.run(store, sql, tenant_id=tenants[0], max_rows=10, max_seconds=5)


def test_runs_read_only_with_limits(store, tenants):
    row = _run(store, "SELECT getSetting('readonly') AS r, getSetting('max_execution_time') AS m",
               tenants[0])[0]  # fmt: skip
    assert int(row["r"]) == 1 and float(row["m"]) == 10
    assert len(_run(store, "SELECT * FROM learner_scores", None, rows=3)) == 3


def test_http_roles_formats_and_audit(live_api, store, tenants):
    mine, theirs = tenants
    secret = live_api.ctx.secrets.token_secret

    def post(role: str, sql: str, fmt: str = "json", tenant: str = mine) -> httpx.Response:
        tok = issue_token(secret, tenant_id=tenant, tenant_name=tenant, role=role, user_id="x",
                          ttl_s=60)  # fmt: skip
        return httpx.post(f"{live_api.url}/v1/sql", json={"sql": sql, "format": fmt},
                          headers={"Authorization": f"Bearer {tok}"}, timeout=30)  # fmt: skip

    q = "SELECT DISTINCT tenant_id FROM events ORDER BY tenant_id"
    r = post("analyst", q)
    assert r.status_code == 200 and [json.loads(x)["tenant_id"] for x in r.text.split()] == [mine]
    everyone = post("platform_admin", q).text
    assert mine in everyone and theirs in everyone
    rows = list(csv.reader(io.StringIO(post("analyst", q, "csv").text)))
    assert rows == [["tenant_id"], [mine]]
    assert post("analyst", q, "parquet").content[:4] == b"PAR1"
    for role in ("company_admin", "manager", "learner"):
        assert post(role, q).status_code == 403
    bad = post("analyst", "SELECT * FROM system.tables")
    assert bad.status_code == 400 and "not an analytics table" in bad.json()["detail"]
    trail = store.query(
        "SELECT outcome FROM audit_events WHERE tenant_id = {t:String} AND action = 'sql.query'",
        {"t": mine},
    )
    assert {r["outcome"] for r in trail} == {"ok", "refused"}


@pytest.mark.stack
def test_cli_sql_formats_and_refusal(tmp_path):
    env = {**os.environ, "SKILLSTREAM_RUN_DIR": str(tmp_path / "run")}
    assert cli(env, "tenant", "create", "acme").returncode == 0
    ok = cli(env, "sql", "SELECT count() AS n FROM events", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"n": 0}
    scoped = cli(env, "sql", "SELECT count() AS n FROM events", "--tenant", "acme")
    assert scoped.returncode == 0 and scoped.stdout.splitlines() == ['"n"', "0"]
    refused = cli(env, "sql", "SELECT * FROM tenants")
    assert refused.returncode != 0 and "not an analytics table" in refused.stderr
