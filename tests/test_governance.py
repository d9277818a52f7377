"""Audit chain, legal holds, retention purge and erasure on the embedded
ClickHouse (and the real API for the HTTP and CLI paths)."""

from __future__ import annotations

import csv
import io
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from api.audit.chain import audit, verify
from api.retention.erasure import settle_erasures
from api.retention.holds import place_hold
from api.retention.policies import set_policy
from api.retention.purge import purge_tenant
from api.security import issue_token
from core.settings import Settings

NAMES = ("session_started", "lesson_completed")


@pytest.fixture(scope="module")
def api(tmp_path_factory, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    s = Settings(
        SKILLSTREAM_RUN_DIR=tmp_path_factory.mktemp("gov") / "run",
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"g{uuid.uuid4().hex[:8]}",
        TOPIC_PARTITIONS=1,
    )
    live = LiveApi(s, store, kafka_bootstrap)
    yield live
    live.close()


def _tenant(api) -> tuple[str, str]:
    name = f"gov-{uuid.uuid4().hex[:6]}"
    t, _ = api.ctx.tenants.create(name)
    return t.tenant_id, name


def _h(api, tenant_id: str, name: str, role: str, user: str = "boss") -> dict[str, str]:
    tok = issue_token(
        api.ctx.secrets.token_secret,
        tenant_id=tenant_id,
        tenant_name=name,
        role=role,
        user_id=user,
        ttl_s=600,
    )
    return {"Authorization": f"Bearer {tok}"}


def _event(tenant: str, user: str, name: str, at: datetime) -> dict:
    return {
        "tenant_id": tenant,
        "event_id": uuid.uuid4().hex,
        "event_name": name,
        "event_timestamp": at,
        "received_at": at,
        "user_id": user,
        "learner_id": user,
        "anonymous_id": "",
        "persona": "student",
        "context_page": "/",
        "essential": 0,
        "properties": "{}",
        "schema_version": 2,
        "retention_days": 1095,
        "legal_hold": 0,
        "version": 1,
    }


# --- audit chain ---------------------------------------------------------------------
def test_audit_chain_verifies_and_detects_edits_and_deletions(store):
    edited, deleted = f"t_{uuid.uuid4().hex[:8]}", f"t_{uuid.uuid4().hex[:8]}"
    for t in (edited, deleted):
        for i in range(5):
            audit(
                store,
                tenant_id=t,
                actor_id=f"u{i}",
                actor_role="company_admin",
                action="org.link",
                resource=f"manager:m->u{i}",
                outcome="ok",
                detail={"i": i},
            )
        (v,) = verify(store, t)
        assert v.ok and v.rows == 5
    store.command(
        "ALTER TABLE audit_events UPDATE detail = '{\"i\": 99}' WHERE tenant_id = {t:String}"
        " AND seq = 3 SETTINGS mutations_sync = 1",
        {"t": edited},
    )
    (v,) = verify(store, edited)
    assert not v.ok and v.broken_seq == 3 and "hash" in v.reason
    store.command(
        "ALTER TABLE audit_events DELETE WHERE tenant_id = {t:String} AND seq = 2"
        " SETTINGS mutations_sync = 1",
        {"t": deleted},
    )
    (v,) = verify(store, deleted)
    assert not v.ok and v.broken_seq == 3 and "missing" in v.reason


def test_cli_audit_verify_through_the_running_api(api, store, capsys, monkeypatch):
    from ops import cli

    tid, name = _tenant(api)
    audit(
        store,
        tenant_id=tid,
        actor_id="x",
        actor_role="company_admin",
        action="org.link",
        resource="r",
        outcome="ok",
    )
    s = api.settings
    s.api_file.parent.mkdir(parents=True, exist_ok=True)
    s.api_file.write_text(json.dumps({"url": api.url, "pid": os.getpid()}))
    monkeypatch.setattr(cli, "get_settings", lambda: s)
    assert cli.main(["audit", "verify", "--tenant", name]) == 0
    assert f"ok\t{tid}" in capsys.readouterr().out
    store.command(
        "ALTER TABLE audit_events UPDATE outcome = 'denied' WHERE tenant_id = {t:String}"
        " AND seq = 1 SETTINGS mutations_sync = 1",
        {"t": tid},
    )
    assert cli.main(["audit", "verify", "--tenant", name]) == 1
    assert "BROKEN" in capsys.readouterr().out
    # legal-hold CLI round trip, audited
    assert (
        cli.main(
            [
                "legal-hold",
                "add",
                "--tenant",
                name,
                "--kind",
                "user",
                "--user",
                "u9",
                "--reason",
                "litigation",
            ]
        )
        == 0
    )
    assert cli.main(["legal-hold", "list", "--tenant", name]) == 0
    assert "u9\tlitigation" in capsys.readouterr().out


# --- legal holds, erasure, audit export ------------------------------------------------
def test_hold_refuses_erasure_and_audit_export_filters_by_hold(api, store):
    tid, name = _tenant(api)
    now = datetime.now(UTC)
    store.insert("events", [_event(tid, u, "session_started", now) for u in ("u1", "u2")])
    admin = _h(api, tid, name, "company_admin")
    r = httpx.post(
        f"{api.url}/v1/governance/legal-holds",
        headers=admin,
        json={"kind": "user", "user_id": "u1", "reason": "case 42"},
    )
    assert r.status_code == 201, r.text
    hold_id = r.json()["hold_id"]
    held = store.query(
        "SELECT learner_id, legal_hold FROM events WHERE tenant_id = {t:String}", {"t": tid}
    )
    assert {(x["learner_id"], x["legal_hold"]) for x in held} == {("u1", 1), ("u2", 0)}
    r = httpx.post(
        f"{api.url}/v1/governance/deletion-requests", headers=admin, json={"user_id": "u1"}
    )
    assert r.status_code == 409 and "case 42" in r.json()["detail"]["reason"]
    r = httpx.post(
        f"{api.url}/v1/governance/deletion-requests", headers=admin, json={"user_id": "u2"}
    )
    assert r.status_code == 200 and r.json()["removed"]["events"] == 1
    left = store.query("SELECT learner_id FROM events WHERE tenant_id = {t:String}", {"t": tid})
    assert [x["learner_id"] for x in left] == ["u1"]
    # a manager may not place holds
    r = httpx.post(
        f"{api.url}/v1/governance/legal-holds",
        headers=_h(api, tid, name, "manager"),
        json={"kind": "tenant", "reason": "x"},
    )
    assert r.status_code == 403
    # the auditors' export: only the rows under hold
    r = httpx.post(
        f"{api.url}/v1/exports", headers=admin, json={"report": "audit", "legal_hold": True}
    )
    assert r.status_code == 202, r.text
    eid = r.json()["export_id"]
    for _ in range(200):
        st_ = httpx.get(f"{api.url}/v1/exports/{eid}", headers=admin).json()
        if st_["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert st_["status"] == "done", st_
    rows = list(csv.DictReader(io.StringIO(httpx.get(st_["download_url"]).text)))
    actions = {x["action"] for x in rows}
    assert "legal_hold.place" in actions and "erasure.request" in actions  # refused u1: held
    assert all(x["legal_hold"] == "1" for x in rows)
    assert (
        httpx.post(
            f"{api.url}/v1/exports", headers=_h(api, tid, name, "manager"), json={"report": "audit"}
        ).status_code
        == 403
    )
    # release, then erasure goes through
    r = httpx.post(f"{api.url}/v1/governance/legal-holds/{hold_id}/release", headers=admin)
    assert r.status_code == 200
    r = httpx.post(
        f"{api.url}/v1/governance/deletion-requests", headers=admin, json={"user_id": "u1"}
    )
    assert r.status_code == 200
    (v,) = verify(store, tid)
    assert v.ok


def test_an_erasures_second_pass_removes_what_landed_after_it(api, store):
    """Rows of the user that reach ClickHouse after the request (events that
    were still in the worker or the sink then) go in the second pass; a
    request under a hold placed since is left, with the reason."""
    tid, name = _tenant(api)
    now = datetime.now(UTC)
    store.insert("events", [_event(tid, u, "session_started", now) for u in ("u1", "u2", "u3")])
    admin = _h(api, tid, name, "company_admin")
    for user in ("u1", "u3"):
        r = httpx.post(
            f"{api.url}/v1/governance/deletion-requests", headers=admin, json={"user_id": user}
        )
        assert r.status_code == 200, r.text
    # late arrivals of both, after the first pass; then a hold on u3
    store.insert("events", [_event(tid, u, "lesson_completed", now) for u in ("u1", "u3")])
    place_hold(store, tenant_id=tid, kind="user", user_id="u3", from_ts=None, to_ts=None,
               reason="case 7", actor_id="dpo", actor_role="company_admin")  # fmt: skip
    sent: list[tuple[str, str]] = []
    n = settle_erasures(store, lambda t, u, _: sent.append((t, u)), 600, now + timedelta(hours=1))
    assert n >= 2 and [x for x in sent if x[0] == tid] == [(tid, "u1")]  # the store is shared
    left = store.query(
        "SELECT learner_id, event_name FROM events WHERE tenant_id = {t:String} ORDER BY 1",
        {"t": tid},
    )
    assert [(x["learner_id"], x["event_name"]) for x in left] == [
        ("u2", "session_started"), ("u3", "lesson_completed")
    ]  # fmt: skip
    status = {
        x["user_id"]: (x["status"], x["reason"])
        for x in store.query(
            "SELECT user_id, status, reason FROM deletion_requests FINAL"
            " WHERE tenant_id = {t:String}",
            {"t": tid},
        )
    }
    assert status["u1"] == ("settled", "") and status["u3"][0] == "settled"
    assert "case 7" in status["u3"][1]
    assert settle_erasures(store, None, 600, now + timedelta(hours=2)) == 0  # once
    (v,) = verify(store, tid)
    assert v.ok


# --- the purge (property-based) ----------------------------------------------------------
ages = st.integers(min_value=0, max_value=14 * 24)  # hours before now


# No shrinking: each example costs real mutations; the failing example is printed as is.
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["u1", "u2", "u3"]), st.sampled_from(NAMES), ages),
        min_size=1,
        max_size=25,
    ),
    days=st.tuples(st.integers(1, 10), st.integers(1, 10)),
    agg_days=st.integers(1, 10),
    daily=st.lists(
        st.tuples(st.sampled_from(["u1", "u2", "u3"]), st.integers(0, 14)), max_size=10, unique=True
    ),
    hold_user=st.sampled_from([None, "u1", "u2"]),
    hold_range=st.one_of(st.none(), st.tuples(ages, st.integers(1, 72))),
)
def test_purge_removes_exactly_the_expired_rows(
    store, events, days, agg_days, daily, hold_user, hold_range
):
    s = Settings()
    tid = f"t_{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [(u, n, now - timedelta(hours=h)) for u, n, h in events]
    store.insert("events", [_event(tid, u, n, at) for u, n, at in rows])
    today = now.date()
    store.insert(
        "learner_daily",
        [
            {
                "tenant_id": tid,
                "user_id": u,
                "day": today - timedelta(days=d),
                "events": 1,
                "version": 1,
                "updated_at": now,
            }
            for u, d in daily
        ],
    )
    policy = dict(zip(NAMES, days, strict=True))
    for name, d in policy.items():
        set_policy(store, s, tenant_id=tid, subject=name, days=d, actor_id="t", actor_role="t")
    set_policy(
        store, s, tenant_id=tid, subject="aggregates", days=agg_days, actor_id="t", actor_role="t"
    )
    rng = None
    if hold_user:
        place_hold(
            store,
            tenant_id=tid,
            kind="user",
            user_id=hold_user,
            from_ts=None,
            to_ts=None,
            reason="r",
            actor_id="t",
            actor_role="t",
        )
    if hold_range:
        start = now - timedelta(hours=hold_range[0])
        rng = (start, start + timedelta(hours=hold_range[1]))
        place_hold(
            store,
            tenant_id=tid,
            kind="range",
            user_id=None,
            from_ts=rng[0],
            to_ts=rng[1],
            reason="r",
            actor_id="t",
            actor_role="t",
        )

    def held(u: str, at: datetime) -> bool:
        return u == hold_user or (rng is not None and rng[0] <= at < rng[1])

    rep = purge_tenant(store, s, None, tid, now)

    want = sorted(
        (u, n, at) for u, n, at in rows if at >= now - timedelta(days=policy[n]) or held(u, at)
    )
    got = sorted(
        (r["learner_id"], r["event_name"], datetime.fromisoformat(r["t"]).replace(tzinfo=UTC))
        for r in store.query(
            "SELECT learner_id, event_name, toString(event_timestamp) AS t FROM events"
            " WHERE tenant_id = {t:String}",
            {"t": tid},
        )
    )
    assert got == want
    assert rep.removed["events"] == len(rows) - len(want)
    cutoff = (now - timedelta(days=agg_days)).date()
    want_daily = sorted(
        (u, (today - timedelta(days=d)).isoformat())
        for u, d in daily
        if today - timedelta(days=d) >= cutoff
        or held(u, datetime.combine(today - timedelta(days=d), datetime.min.time(), UTC))
    )
    got_daily = sorted(
        (r["user_id"], r["day"])
        for r in store.query(
            "SELECT user_id, toString(day) AS day FROM learner_daily WHERE tenant_id = {t:String}",
            {"t": tid},
        )
    )
    assert got_daily == want_daily
    trail = store.query(
        "SELECT detail FROM audit_events WHERE tenant_id = {t:String}"
        " AND action = 'retention.purge'",
        {"t": tid},
    )
    assert json.loads(trail[0]["detail"])["removed"]["events"] == rep.removed["events"]


def test_purge_runs_on_each_tenants_own_cadence(api, store):
    from api.retention.purge import due_tenants, purge_due

    hourly, name = _tenant(api)
    daily, _ = _tenant(api)
    admin = _h(api, hourly, name, "company_admin")
    r = httpx.put(f"{api.url}/v1/governance/purge-schedule", headers=admin, json={"every_s": 3600})
    assert r.status_code == 200 and r.json()["every_s"] == 3600
    now = datetime.now(UTC)
    both = [hourly, daily]
    ran = purge_due(store, api.settings, None, now, among=both)  # other tests' tenants: untouched
    assert hourly in ran and daily in ran  # never purged: both due
    assert not {hourly, daily} & set(due_tenants(store, api.settings, now, both))
    later = set(due_tenants(store, api.settings, now + timedelta(hours=2), both))
    assert hourly in later and daily not in later
    assert daily in set(due_tenants(store, api.settings, now + timedelta(hours=25), both))
    got = httpx.get(f"{api.url}/v1/governance/purge-schedule", headers=admin).json()
    assert got["every_s"] == 3600 and got["last_purge"]
