"""Exports and report-ready notifications over the real API (embedded
ClickHouse, real Kafka, the local object store, a real local SMTP server
and a real local webhook receiver)."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from confluent_kafka import Consumer
from standardwebhooks import Webhook, WebhookVerificationError

from api.reports.org import Link, OrgRegistry
from api.security import issue_token
from core.settings import Settings
from ops.kafka_launcher import free_port
from schemas import ready
from tests.support import reports_data as rd


class Receiver:
    """A webhook endpoint on loopback that records every request."""

    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_left = fail_first
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail_left > 0:
                    outer.fail_left -= 1
                    self.send_response(503)
                else:
                    outer.requests.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class Mailbox:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[str, list[str], str]] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
                outer.messages.append(
                    (envelope.mail_from, envelope.rcpt_tos, envelope.content.decode())
                )
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class World:
    def __init__(self, api, org: rd.Org, name: str) -> None:
        self.api, self.org, self.name = api, org, name

    def token(self, role: str, user: str | None = None) -> str:
        default = {
            "platform_admin": "root",
            "company_admin": "boss",
            "program_owner": self.org.owner,
            "manager": self.org.manager,
            "mentor": self.org.mentor,
            "learner": self.org.learner,
        }[role]
        return issue_token(
            self.api.ctx.secrets.token_secret,
            tenant_id=self.org.tenant_id,
            tenant_name=self.name,
            role=role,
            user_id=user or default,
            ttl_s=600,
        )

    def h(self, role: str, user: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, user)}"}

    def post(self, role: str, body: dict, user: str | None = None) -> httpx.Response:
        return httpx.post(
            f"{self.api.url}/v1/exports", json=body, headers=self.h(role, user), timeout=30
        )

    def wait(self, role: str, export_id: str, want: str = "done", user: str | None = None):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = httpx.get(f"{self.api.url}/v1/exports/{export_id}", headers=self.h(role, user))
            assert r.status_code == 200, r.text
            if r.json()["status"] in (want, "failed"):
                break
            time.sleep(0.1)
        body = r.json()
        assert body["status"] == want, body
        return body


@pytest.fixture(scope="module")
def mailbox():
    m = Mailbox()
    yield m
    m.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory, store, kafka_bootstrap, mailbox):
    from tests.conftest import LiveApi

    settings = Settings(
        SKILLSTREAM_RUN_DIR=tmp_path_factory.mktemp("exports") / "run",
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"x{uuid.uuid4().hex[:8]}",
        TOPIC_PARTITIONS=1,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=mailbox.port,
        WEBHOOK_BACKOFF_S=0.05,
        WEBHOOK_MAX_ATTEMPTS=3,
        WEBHOOK_ALLOW_NETWORKS="127.0.0.1/32",  # the test receivers listen on loopback
        EXPORT_CHUNK_ROWS=5,  # several keyset chunks even on a small org
    )
    api = LiveApi(settings, store, kafka_bootstrap)
    name = f"exp-{uuid.uuid4().hex[:6]}"
    t, _ = api.ctx.tenants.create(name)
    org = rd.build(t.tenant_id, f"x{uuid.uuid4().hex[:4]}", datetime.now(UTC).date())
    rd.insert(store, org)
    OrgRegistry(store).link_many(
        [Link(org.tenant_id, *lk) for lk in rd.links(org)], actor="test", actor_role="test"
    )
    yield World(api, org, name)
    api.close()


def _download(world: World, body: dict) -> httpx.Response:
    return httpx.get(body["download_url"], timeout=30)


@pytest.mark.parametrize("role", ["platform_admin", "company_admin", "program_owner", "manager"])
def test_csv_export_is_scoped_like_the_screen(world, role):
    scope = {"tenant_id": world.org.tenant_id} if role == "platform_admin" else {}
    r = world.post(role, {"report": "learners", "format": "csv", **scope})
    assert r.status_code == 202, r.text
    body = world.wait(role, r.json()["export_id"])
    got = _download(world, body)
    assert got.status_code == 200
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert {x["user_id"] for x in rows} == rd.visible(world.org, role)
    assert body["rows"] == len(rows)
    # the same rows as the screen, column for column
    screen = httpx.get(
        f"{world.api.url}/v1/reports/learners",
        params={"page_size": 500, **scope},
        headers=world.h(role),
    ).json()["items"]
    by_user = {i["user_id"]: i for i in screen}
    for x in rows:
        s = by_user[x["user_id"]]
        assert int(x["score"]) == s["score"] and bool(int(x["at_risk"])) == s["at_risk"]
        assert int(x["sign_ins"]) == s["components"]["sign_ins"]


def test_out_of_scope_exports_are_403(world):
    a = world.org
    outsider = next(u for u in a.users if u not in a.reports)
    assert world.post("mentor", {"report": "learners"}).status_code == 403  # aggregates only
    assert world.post("manager", {"report": "learners", "user_id": outsider}).status_code == 403
    assert world.post("manager", {"report": "learners", "format": "pdf"}).status_code == 403
    assert world.post("learner", {"report": "kpis"}).status_code == 403  # no export right
    r = world.post("company_admin", {"report": "learners", "tenant_id": "t_other"})
    assert r.status_code == 403
    # one user's export is not another's
    r = world.post("manager", {"report": "engagement"})
    assert r.status_code == 202
    other = httpx.get(
        f"{world.api.url}/v1/exports/{r.json()['export_id']}", headers=world.h("program_owner")
    )
    assert other.status_code == 404


def test_tenant_flag_off_is_403_and_charts_stay(world, store):
    ctx = world.api.ctx
    from api.capabilities import set_flags

    set_flags(
        store,
        ctx.tenants,
        world.org.tenant_id,
        enable=[],
        disable=["bulk_export"],
        actor_id="test",
        actor_role="test",
    )
    try:
        r = world.post("company_admin", {"report": "engagement"})
        assert r.status_code == 403 and "bulk_export" in r.json()["detail"]
        chart = httpx.get(
            f"{world.api.url}/v1/reports/engagement", headers=world.h("company_admin")
        )
        assert chart.status_code == 200
        denied = store.query(
            "SELECT count() AS n FROM audit_events WHERE tenant_id = {t:String}"
            " AND action = 'report.denied' AND resource = 'export.engagement'",
            {"t": world.org.tenant_id},
        )
        assert int(denied[0]["n"]) >= 1
    finally:
        set_flags(
            store,
            ctx.tenants,
            world.org.tenant_id,
            enable=["bulk_export"],
            disable=[],
            actor_id="test",
            actor_role="test",
        )
    assert world.post("company_admin", {"report": "engagement"}).status_code == 202


def test_pdf_is_a_real_report(world, artifacts):
    r = world.post("company_admin", {"report": "learners", "format": "pdf"})
    assert r.status_code == 202, r.text
    body = world.wait("company_admin", r.json()["export_id"])
    pdf = _download(world, body).content
    assert pdf.startswith(b"%PDF-") and b"/Type /Page" in pdf
    (artifacts / "export.pdf").write_bytes(pdf)
    assert body["rows"] == len(world.org.users)


def test_link_expiry_removes_access_and_object(world):
    ctx = world.api.ctx
    r = world.post("company_admin", {"report": "kpis"})
    body = world.wait("company_admin", r.json()["export_id"])
    assert _download(world, body).status_code == 200
    e = ctx.exports.repo.get(body["export_id"])
    assert ctx.objects.exists(e.object_key)
    # a sweep "later than" the link's expiry
    out = ctx.exports.sweep(now=e.link_expires_at)
    assert out["expired"] >= 1
    assert not ctx.objects.exists(e.object_key)
    assert _download(world, body).status_code == 410  # the old link no longer works
    after = world.wait("company_admin", body["export_id"], want="expired")
    assert after["download_url"] is None


def _topic_events(bootstrap: str, topic: str, export_id: str) -> list[dict]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "log_level": 0,
        }
    )
    c.subscribe([topic])
    out, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            if out:
                break
            continue
        if m.error():
            continue
        rec = ready.decode(m.value())
        if rec["export_id"] == export_id:
            out.append(rec)
    c.close()
    return out


def test_crash_between_write_and_notify_gives_one_per_channel(world, store, mailbox):
    ctx = world.api.ctx
    hdr = world.h("manager")
    assert (
        httpx.put(
            f"{world.api.url}/v1/notifications/preferences",
            headers=hdr,
            json={"email": "mgr@example.test", "email_opt_in": True},
        ).status_code
        == 200
    )
    good, flaky = Receiver(), Receiver(fail_first=1)  # flaky: one 503, then OK (retried)
    dead = f"http://127.0.0.1:{free_port()}/nothing-listens"
    secrets = {}
    for url in (good.url, flaky.url, dead):
        r = httpx.post(
            f"{world.api.url}/v1/webhooks", headers=world.h("company_admin"), json={"url": url}
        )
        assert r.status_code == 201, r.text
        secrets[url] = r.json()["secret"]
    try:
        ctx.exports.crash_after_write = True
        r = world.post("manager", {"report": "learners"})
        export_id = r.json()["export_id"]
        world.wait("manager", export_id, want="written")  # file there, nobody told
        time.sleep(0.3)
        ctx.exports.crash_after_write = False
        bell = httpx.get(f"{world.api.url}/v1/notifications", headers=hdr).json()
        assert not [i for i in bell["items"] if export_id in i["link"]]
        # the restart: recovery runs the job again, then a duplicate delivery of it
        assert ctx.exports.recover() >= 1
        world.wait("manager", export_id, want="done")
        ctx.exports.run(export_id)
        e = ctx.exports.repo.get(export_id)
        ctx.notifier.fan_out(ctx.exports.ready_event(e))

        bell = httpx.get(f"{world.api.url}/v1/notifications", headers=hdr).json()
        mine = [i for i in bell["items"] if export_id in i["link"]]
        assert len(mine) == 1
        assert len([m for m in mailbox.messages if export_id in m[2]]) == 1
        assert len(good.requests) == 1 and len(flaky.requests) == 1
        assert (
            len(
                _topic_events(
                    world.api.settings.kafka_bootstrap or "",
                    ctx.settings.topic("reports.ready"),
                    export_id,
                )
            )
            == 1
        )
        # Standard Webhooks: off-the-shelf code verifies with the webhook's secret, only it
        headers, raw = good.requests[0]
        assert Webhook(secrets[good.url]).verify(raw, headers)["data"]["export_id"] == export_id
        with pytest.raises(WebhookVerificationError):
            Webhook(secrets[flaky.url]).verify(raw, headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(secrets[good.url]).verify(raw + b" ", headers)
        assert json.loads(raw)["type"] == "report.ready"
        # the dead endpoint failed on its own and is in the delivery log
        log = httpx.get(
            f"{world.api.url}/v1/notifications/deliveries", headers=world.h("company_admin")
        ).json()
        mine_log = {(d["channel"], d["status"]) for d in log if d["event_id"].endswith(export_id)}
        assert ("webhook", "failed") in mine_log and ("in_app", "sent") in mine_log
        assert ("email", "sent") in mine_log and ("kafka", "sent") in mine_log
        # mark read
        nid = mine[0]["notification_id"]
        r = httpx.post(f"{world.api.url}/v1/notifications/{nid}/read", headers=hdr)
        assert r.status_code == 200
        bell = httpx.get(
            f"{world.api.url}/v1/notifications", params={"unread": True}, headers=hdr
        ).json()
        assert not [i for i in bell["items"] if i["notification_id"] == nid]
    finally:
        ctx.exports.crash_after_write = False
        good.close()
        flaky.close()
        for h in list(
            httpx.get(f"{world.api.url}/v1/webhooks", headers=world.h("company_admin")).json()
        ):
            httpx.post(
                f"{world.api.url}/v1/webhooks/{h['webhook_id']}/delete",
                headers=world.h("company_admin"),
            )


def test_an_upload_failing_mid_file_fails_the_export_and_frees_the_store(world, store):
    """ClickHouse's CSV blocks go to the object store as they come; when the
    upload fails half-way, the export is marked failed (a write) and the
    store stays free: the open stream is closed first, not held by the
    failure's traceback."""
    runner = world.api.ctx.exports
    real = runner.objects.put_stream

    def breaks_half_way(key, blocks, content_type):
        next(blocks), next(blocks)
        raise OSError("object store went away")

    runner.objects.put_stream = breaks_half_way
    try:
        r = world.post("company_admin", {"report": "learners", "format": "csv"})
        assert r.status_code == 202, r.text
        body = world.wait("company_admin", r.json()["export_id"], want="failed")
        assert "went away" in body["error"]
    finally:
        runner.objects.put_stream = real
    assert store.query("SELECT 1 AS x") == [{"x": 1}]
