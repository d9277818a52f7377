"""Erasure end to end: a learner with history is erased through the API; the
stream worker deletes them from its tables, changelogs and compacted
topics; the nightly and on-demand recomputes write nothing about them; after
a restart, their next event starts from zero."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from api.retention import erasure
from api.security import issue_token
from core.settings import PROJECT_ROOT
from schemas.examples import example_event
from tests.test_stream import (
    _wait_log,
    post_all,
    start_worker,
    stop,
)

pytestmark = pytest.mark.stack

WORKER_TOPICS = ("optout", "identity_links", "identity_pending", "identity_links_sent",
                 "program_week_members")  # fmt: skip
COMPACTED = ("aggregates.learner_daily", "scores.learner", "optout.state")


def _history(name: str, user: str, anon: str, days: int) -> list[dict]:
    now = datetime.now(UTC).replace(microsecond=0)
    ids = {"user_id": user, "anonymous_id": anon, "program_id": "prog-1", "cohort_id": "c1"}
    evs = [example_event("career_match_viewed", client_event_id=f"{user}-anon",
                         at=now - timedelta(days=days, hours=2),
                         **{**ids, "user_id": None})]  # fmt: skip
    for d in range(days, 0, -1):
        at = now - timedelta(days=d)
        for k, event in enumerate(("session_started", "lesson_completed", "assignment_submitted")):
            evs.append(example_event(event, client_event_id=f"{user}-{d}-{k}",
                                     at=at + timedelta(minutes=k), **ids))  # fmt: skip
    evs.append(example_event("settings_tracking_opt_out", client_event_id=f"{user}-out",
                             at=now - timedelta(hours=3), **ids))  # fmt: skip
    evs.append(example_event("settings_tracking_opt_in", client_event_id=f"{user}-in",
                             at=now - timedelta(hours=2), **ids))  # fmt: skip
    return evs


def _rows(api, sql: str, tenant: str, user: str) -> int:
    rows = api.ctx.store.query(f"SELECT count() AS n FROM {sql}", {"t": tenant, "u": user})
    return int(rows[0]["n"])


def _learner_events(api, tenant: str, user: str) -> int:
    rows = api.ctx.store.query(
        "SELECT sum(events) AS n FROM learner_daily FINAL"
        " WHERE tenant_id = {t:String} AND user_id = {u:String}",
        {"t": tenant, "u": user},
    )
    return int(rows[0]["n"] or 0)


def _wait(cond, what: str, timeout: float = 90, show=lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} ({show()})")


def _latest_per_key(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    """Every key's newest value, reading the topic from its start."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"erasure-check-{time.time_ns()}",
                  "enable.auto.commit": False, "log_level": 0})  # fmt: skip
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts}
        c.assign([TopicPartition(topic, p, lo) for p, (lo, _) in ends.items()])
        latest: dict[bytes, bytes | None] = {}
        left = {p for p, (lo, hi) in ends.items() if hi > lo}
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            for m in c.consume(1000, timeout=1):
                if m.error():
                    continue
                latest[m.key()] = m.value()
                if m.offset() >= ends[m.partition()][1] - 1:
                    left.discard(m.partition())
        return latest
    finally:
        c.close()


def test_an_erased_learner_is_gone_from_the_stream_and_starts_from_zero(
    live_api_with_sink,
    settings,
    kafka_bootstrap,
    unique,
):
    api = live_api_with_sink
    name = f"er{unique}"
    tenant, key = api.new_tenant(name)
    gone, kept = f"{name}-u0", f"{name}-u1"
    anon = f"anon-{name}-0"
    events = _history(name, gone, anon, days=3) + _history(name, kept, f"anon-{name}-1", days=2)
    worker = start_worker(settings, kafka_bootstrap)
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap, "TOPIC_PREFIX": settings.topic_prefix,
           "SKILLSTREAM_RUN_DIR": str(settings.run_dir)}  # fmt: skip
    try:
        post_all(api, {name: key}, [events])
        counts = lambda: (_learner_events(api, tenant, gone), _learner_events(api, tenant, kept))  # noqa: E731
        _wait(lambda: counts() == (12, 9), "the history to be queryable", show=counts)
        admin = {"Authorization": "Bearer " + issue_token(
            api.ctx.secrets.token_secret, tenant_id=tenant, tenant_name=name,
            role="company_admin", user_id="dpo", ttl_s=600)}  # fmt: skip
        r = httpx.post(f"{api.url}/v1/governance/deletion-requests", headers=admin,
                       json={"user_id": gone}, timeout=60)  # fmt: skip
        assert r.status_code == 200, r.text
        log = settings.run_dir / "worker.log"
        _wait_log(log, f"erased learner {tenant}:{gone}")
        _wait_log(log, f"erased visitor {tenant}:{anon}")
        # the nightly recompute and an on-demand one, after the erasure
        for days_ago in (1, 2):
            day = (datetime.now(UTC) - timedelta(days=days_ago)).date().isoformat()
            out = subprocess.run([sys.executable, "-m", "ops.cli", "recompute", "--date", day],
                                 env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                                 timeout=60)  # fmt: skip
            assert out.returncode == 0, out.stderr
        _wait_log(log, "ids swept", count=6)
        daily = "learner_scores FINAL WHERE tenant_id = {t:String} AND user_id = {u:String}"
        _wait(lambda: _rows(api, daily + " AND kind = 'daily'", tenant, kept) >= 2,
              "the recompute's scores of the learner kept")  # fmt: skip
        time.sleep(2)  # a sink round after them

        # ClickHouse: nothing of theirs; the other learner untouched
        for table, col in (("events", "learner_id"), ("events", "user_id"),
                           ("learner_daily", "user_id"), ("learner_scores", "user_id"),
                           ("identity_links", "user_id"), ("optout_state", "user_id")):  # fmt: skip
            where = f"{table} WHERE tenant_id = {{t:String}} AND {col} = {{u:String}}"
            assert _rows(api, where, tenant, gone) == 0, f"{table}.{col} still holds them"
        assert _rows(api, "events WHERE tenant_id = {t:String} AND anonymous_id = {u:String}",
                     tenant, anon) == 0  # fmt: skip
        for table, where in erasure.TARGETS.items():  # the read model's tables too
            if table != "events":  # its condition reads identity_links, erased above
                assert _rows(api, f"{table} WHERE {where}", tenant, gone) == 0, table
        assert _learner_events(api, tenant, kept) == 9

        # Kafka, read from the start: every key about them ends in a tombstone
        worker_topics = [f"{settings.topic_prefix}-worker-{t}-changelog" for t in WORKER_TOPICS]
        for topic in [settings.topic(t) for t in COMPACTED] + worker_topics:
            latest = _latest_per_key(kafka_bootstrap, topic)
            about = {k: v for k, v in latest.items()
                     if gone.encode() in k or anon.encode() in k}  # fmt: skip
            alive = {k: v for k, v in about.items() if v is not None}
            assert not alive, f"{topic} still holds {sorted(alive)[:3]}"
        learner_days = _latest_per_key(kafka_bootstrap, settings.topic("aggregates.learner_daily"))
        assert any(gone.encode() in k for k in learner_days), "no tombstones were written"

        # after a restart (tables restored from their changelogs) they start from zero
        stop(worker)
        worker = start_worker(settings, kafka_bootstrap)
        again = example_event("session_started", client_event_id=f"{gone}-again",
                              at=datetime.now(UTC), user_id=gone, anonymous_id=anon)  # fmt: skip
        post_all(api, {name: key}, [[again]])
        _wait(lambda: _learner_events(api, tenant, gone) >= 1, "their new event")
        time.sleep(3)
        assert _learner_events(api, tenant, gone) == 1
    finally:
        stop(worker)
