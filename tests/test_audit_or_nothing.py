"""Audit or nothing: when the audit store refuses a row, the change it would
record does not happen (503 with Retry-After), and a refusal (403) stays a
refusal. The refusal is ClickHouse's own: a CHECK constraint on
``audit_events`` that no row passes, on the session's real embedded store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.audit.chain import AuditUnavailable, verify
from api.retention.policies import set_policy
from api.retention.purge import purge_tenant
from api.security import issue_token
from core.settings import Settings
from tests.test_governance import _event


@pytest.fixture(scope="module")
def api(tmp_path_factory, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    s = Settings(
        SKILLSTREAM_RUN_DIR=tmp_path_factory.mktemp("aon") / "run",
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"a{uuid.uuid4().hex[:8]}",
        TOPIC_PARTITIONS=1,
        WEBHOOK_ALLOW_NETWORKS="127.0.0.1/32",  # the webhook below points at loopback
    )
    live = LiveApi(s, store, kafka_bootstrap)
    yield live
    live.close()


@contextmanager
def audit_store_refuses(store) -> Iterator[None]:
    store.command("ALTER TABLE audit_events ADD CONSTRAINT refuse_all CHECK seq < 0")
    try:
        yield
    finally:
        store.command("ALTER TABLE audit_events DROP CONSTRAINT refuse_all")


def _headers(api, tenant_id: str, name: str, role: str) -> dict[str, str]:
    tok = issue_token(
        api.ctx.secrets.token_secret,
        tenant_id=tenant_id,
        tenant_name=name,
        role=role,
        user_id="boss",
        ttl_s=600,
    )
    return {"Authorization": f"Bearer {tok}"}


def _count(store, sql: str, tenant_id: str) -> int:
    return int(store.query(sql, {"t": tenant_id})[0]["n"])


HOLDS = "SELECT count() AS n FROM legal_holds WHERE tenant_id = {t:String}"
POLICIES = "SELECT count() AS n FROM retention_policies WHERE tenant_id = {t:String}"
LINKS = "SELECT count() AS n FROM org_links WHERE tenant_id = {t:String}"
HOOKS = "SELECT count() AS n FROM webhooks FINAL WHERE tenant_id = {t:String} AND active"
AUDIT = "SELECT count() AS n FROM audit_events WHERE tenant_id = {t:String}"


def _changes(api, tid: str, admin: dict[str, str]) -> list[httpx.Response]:
    with httpx.Client(base_url=api.url, headers=admin, timeout=30) as c:
        return [
            c.post("/v1/governance/legal-holds", json={"kind": "tenant", "reason": "litigation"}),
            c.put(
                "/v1/governance/retention",
                json={"subject": "lesson_completed", "retention_days": 30},
            ),
            c.put("/v1/governance/purge-schedule", json={"every_s": 3600}),
            c.post(
                "/v1/org/links",
                json={"relation": "manager", "subject_id": "m1", "object_id": "u1"},
            ),
            c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}),
        ]


def test_a_refused_audit_row_refuses_the_change(api, store):
    tenant, _ = api.ctx.tenants.create(f"aon-{uuid.uuid4().hex[:6]}")
    tid, name = tenant.tenant_id, tenant.name
    admin = _headers(api, tid, name, "company_admin")
    tables = (HOLDS, POLICIES, LINKS, HOOKS)
    before = [_count(store, q, tid) for q in tables]
    audit_rows = _count(store, AUDIT, tid)

    with audit_store_refuses(store):
        refused = _changes(api, tid, admin)
        # a refusal is still a refusal: nothing changes, so its lost row is only logged
        learner = _headers(api, tid, name, "learner")
        denied = httpx.get(f"{api.url}/v1/reports/kpis?user_id=other", headers=learner)
        with pytest.raises(AuditUnavailable):  # the purge counts, then cannot record: no delete
            purge_tenant(store, api.ctx.settings, None, tid)

    assert [r.status_code for r in refused] == [503] * len(refused), [r.text for r in refused]
    assert all(r.headers["Retry-After"] for r in refused)
    detail = refused[0].json()["detail"]
    assert "legal_hold.place not done" in detail and "nothing was changed" in detail
    assert "Constraint" not in detail and "refuse_all" not in detail  # no store internals
    assert denied.status_code == 403
    assert [_count(store, q, tid) for q in tables] == before
    assert _count(store, AUDIT, tid) == audit_rows

    # the store accepts rows again: the same requests go through, the chain is whole
    assert [r.status_code for r in _changes(api, tid, admin)] == [201, 200, 200, 201, 201]
    assert [_count(store, q, tid) for q in tables] == [b + 1 for b in before]
    assert all(v.ok for v in verify(store, tid))


def test_a_purge_the_audit_cannot_record_deletes_nothing(api, store):
    tenant, _ = api.ctx.tenants.create(f"aon-{uuid.uuid4().hex[:6]}")
    tid = tenant.tenant_id
    set_policy(store, api.ctx.settings, tenant_id=tid, subject="lesson_completed", days=30,
               actor_id="dpo", actor_role="company_admin")  # fmt: skip
    old = datetime.now(UTC) - timedelta(days=100)  # past the policy, within the table's TTL
    store.insert("events", [_event(tid, "u1", "lesson_completed", old) for _ in range(3)])
    events = "SELECT count() AS n FROM events WHERE tenant_id = {t:String}"

    with audit_store_refuses(store), pytest.raises(AuditUnavailable):
        purge_tenant(store, api.ctx.settings, None, tid)
    assert _count(store, events, tid) == 3

    rep = purge_tenant(store, api.ctx.settings, None, tid)
    assert rep.removed["events"] == 3 and _count(store, events, tid) == 0
    assert all(v.ok for v in verify(store, tid))
