"""Two job runners against one store (as `skillstream jobs` runs them beside
API replicas that leave the jobs to them): the shares of the once-only work
are leases from Kafka's group coordinator (api/leases.py). Each export is
written once and each of its notifications sent once, while one runner
leaves mid-run and the other takes its shares; share 0 (the sweeps and
purges) is never held by both."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from api.context import AppContext
from api.jobs_main import job_leases
from api.reports.org import Link, OrgRegistry
from core.settings import Settings
from tests.support import reports_data as rd
from tests.test_exports import Receiver, World, _topic_events

EXPORTS = 16


def _runner(settings: Settings, store, secrets, bootstrap: str, member: str) -> AppContext:
    ctx = AppContext(settings=settings, store=store, secrets=secrets, kafka_bootstrap=bootstrap)
    ctx.start_jobs(job_leases(settings, bootstrap, member))
    return ctx


def _wait(cond, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.timeout(300)
def test_two_runners_do_each_export_and_notification_once(tmp_path, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    settings = Settings(
        SKILLSTREAM_RUN_DIR=tmp_path / "run",
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"j{uuid.uuid4().hex[:8]}",
        TOPIC_PARTITIONS=6,
        API_RUNS_JOBS=False,  # the API only records exports; the runners claim them
        EXPORT_CLAIM_S=0.2,
        WEBHOOK_ALLOW_NETWORKS="127.0.0.1/32",
    )
    api = LiveApi(settings, store, kafka_bootstrap)
    name = f"jobs-{uuid.uuid4().hex[:6]}"
    t, _ = api.ctx.tenants.create(name)
    org = rd.build(t.tenant_id, f"j{uuid.uuid4().hex[:4]}", datetime.now(UTC).date())
    rd.insert(store, org)
    OrgRegistry(store).link_many(
        [Link(org.tenant_id, *lk) for lk in rd.links(org)], actor="test", actor_role="test"
    )
    world = World(api, org, name)
    hook = Receiver()
    r = httpx.post(
        f"{api.url}/v1/webhooks", headers=world.h("company_admin"), json={"url": hook.url}
    )
    assert r.status_code == 201, r.text
    a = _runner(settings, store, api.ctx.secrets, kafka_bootstrap, "runner-a")
    b = _runner(settings, store, api.ctx.secrets, kafka_bootstrap, "runner-b")
    running = [a, b]
    try:
        _wait(lambda: a.leases.held() and b.leases.held(), "the two runners never split the shares")
        assert not a.leases.held() & b.leases.held()
        gate = _hold_exports(a)  # a claims its exports and gets stuck on the first
        ids = [
            world.post("manager", {"report": "learners"}).json()["export_id"]
            for _ in range(EXPORTS)
        ]
        _wait(lambda: _done(api, ids) >= EXPORTS // 4, "runner b finished no export")
        _wait(lambda: len(a.exports._queued) >= 2, "runner a claimed nothing")
        orphaned = _die(a, gate)  # b takes every share, and a's unfinished exports
        running.remove(a)
        assert orphaned and not {i for i in orphaned if _status(api, i) == "done"}
        _wait(lambda: _done(api, ids) == EXPORTS, f"exports stuck at {_done(api, ids)}", 120)
        every = set(range(b.leases.shares))
        _wait(lambda: b.leases.held() == every, f"b holds only {b.leases.held()}", 30)

        written = Counter(
            r["resource"]
            for r in store.query(
                "SELECT resource FROM audit_events WHERE tenant_id = {t:String} "
                "AND action = 'export.written'",
                {"t": t.tenant_id},
            )
        )
        assert written == Counter({f"export:{i}": 1 for i in ids}), written
        _wait(lambda: len(hook.requests) >= EXPORTS, "webhooks missing")
        time.sleep(1)  # a duplicate would arrive about now
        delivered = Counter(_webhook_export(body) for _, body in hook.requests)
        assert delivered == Counter({i: 1 for i in ids}), delivered
        ready = settings.topic("reports.ready")
        for i in ids[:3]:
            assert len(_topic_events(kafka_bootstrap, ready, i)) == 1
    finally:
        for ctx in running:
            ctx.close()
        hook.close()
        api.close()


def _hold_exports(ctx: AppContext) -> threading.Event:
    """Make the runner's export thread wait before each job until released."""
    gate, run = threading.Event(), ctx.exports.run
    ctx.exports.run = lambda export_id: gate.wait() and run(export_id)
    return gate


def _die(ctx: AppContext, gate: threading.Event) -> set[str]:
    """As a runner killed mid-work: what it claimed stays queued in the store
    (the one in its hands too: it never starts). Returns their ids."""
    ctx.exports.owns = lambda _export_id: False
    orphaned = set(ctx.exports._queued)
    gate.set()
    ctx.close()
    return orphaned


def _status(api, export_id: str) -> str:
    return api.ctx.exports.repo.get(export_id).status


def _done(api, ids: list[str]) -> int:
    return sum(_status(api, i) == "done" for i in ids)


def _webhook_export(body: bytes) -> str:
    import json

    return json.loads(body)["data"]["export_id"]


@pytest.mark.parametrize("process", ["sink", "jobs"])
@pytest.mark.stack
def test_sink_and_jobs_processes_need_a_server(tmp_path, process):
    """chdb admits one process per data path (the API's): said, not a crash."""
    import os

    from tests.support.stack import cli

    env = {k: v for k, v in os.environ.items() if k != "CLICKHOUSE_URL"}
    env.update(SKILLSTREAM_RUN_DIR=str(tmp_path), KAFKA_BOOTSTRAP="127.0.0.1:1")
    done = cli(env, process, timeout=60)
    assert done.returncode != 0
    assert f"skillstream {process} needs CLICKHOUSE_URL" in done.stderr, done.stderr
