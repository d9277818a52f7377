"""Issue 18's open doors: demo mode only when asked for and only for loopback
clients."""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
import pytest
from starlette.requests import Request

from api.deps import require_loopback_client
from core.settings import PROJECT_ROOT, Settings
from tests.test_dashboard import browser  # noqa: F401 (the headless Chromium fixture)


def _settings(tmp_path_factory, kafka_bootstrap: str, **extra) -> Settings:
    return Settings(
        SKILLSTREAM_RUN_DIR=tmp_path_factory.mktemp("doors") / "run",
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"o{uuid.uuid4().hex[:8]}",
        TOPIC_PARTITIONS=1,
        **extra,
    )


@pytest.fixture(scope="module")
def demo_api(tmp_path_factory, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    live = LiveApi(_settings(tmp_path_factory, kafka_bootstrap, SKILLSTREAM_DEMO=1), store,
                   kafka_bootstrap)  # fmt: skip
    live.ctx.tenants.create(f"demo-{uuid.uuid4().hex[:6]}")
    yield live
    live.close()


@pytest.fixture(scope="module")
def plain_api(tmp_path_factory, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    live = LiveApi(_settings(tmp_path_factory, kafka_bootstrap), store, kafka_bootstrap)
    yield live
    live.close()


def test_without_demo_mode_the_demo_endpoints_do_not_exist(plain_api):
    for path in ("/v1/demo/tokens", "/v1/demo/history"):
        assert httpx.get(f"{plain_api.url}{path}", timeout=10).status_code == 404
    paths = httpx.get(f"{plain_api.url}/openapi.json", timeout=10).json()["paths"]
    assert not [p for p in paths if p.startswith("/v1/demo")]
    assert httpx.get(f"{plain_api.url}/v1/dashboard/config").json()["demo"] is False


def test_demo_tokens_go_to_loopback_clients_only(demo_api):
    url = f"{demo_api.url}/v1/demo/tokens"
    ok = httpx.get(url, timeout=30)
    assert ok.status_code == 200 and ok.json()["users"][0]["role"] == "platform_admin"
    localhost = httpx.get(url.replace("127.0.0.1", "localhost"), timeout=30)
    assert localhost.status_code == 200
    # a reverse proxy on this host makes a remote caller look local: refused
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        r = httpx.get(url, headers={header: "203.0.113.7"}, timeout=10)
        assert r.status_code == 403, header
    # DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1
    r = httpx.get(url, headers={"Host": "evil.example:80"}, timeout=10)
    assert r.status_code == 403
    r = httpx.get(f"{demo_api.url}/v1/demo/history", headers={"Host": "evil.example"})
    assert r.status_code == 403


def _request(peer: str | None, host: str, **headers: str) -> Request:
    raw = [(b"host", host.encode())] + [
        (k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()
    ]
    return Request(
        {"type": "http", "headers": raw, "client": (peer, 5555) if peer else None, "path": "/"}
    )


@pytest.mark.parametrize(
    ("peer", "host", "headers", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:8000", {}, True),
        ("::1", "[::1]:8000", {}, True),
        ("127.0.0.1", "localhost", {}, True),
        ("203.0.113.9", "127.0.0.1:8000", {}, False),  # a remote peer
        ("10.0.0.5", "localhost", {}, False),  # the LAN is not this machine
        (None, "localhost", {}, False),  # no peer address at all
        ("testclient", "localhost", {}, False),  # not an IP
        ("127.0.0.1", "demo.example.com", {}, False),  # DNS rebinding
        ("127.0.0.1", "localhost", {"x_forwarded_for": "127.0.0.1"}, False),  # proxied
    ],
)
def test_loopback_rule(peer, host, headers, allowed):
    from fastapi import HTTPException

    req = _request(peer, host, **headers)
    if allowed:
        require_loopback_client(req)
    else:
        with pytest.raises(HTTPException) as exc:
            require_loopback_client(req)
        assert exc.value.status_code == 403


@pytest.mark.stack
def test_up_turns_demo_on_only_with_the_flag(monkeypatch, tmp_path):
    from ops.stack import _child_env

    s = Settings(SKILLSTREAM_RUN_DIR=tmp_path, WORKER_METRICS_PORT=9)
    monkeypatch.setenv("skillstream_demo", "1")  # left over in a shell: ignored
    assert "SKILLSTREAM_DEMO" not in {k.upper() for k in _child_env(s, "b:1", 1, demo=False)}
    assert _child_env(s, "b:1", 1, demo=True)["SKILLSTREAM_DEMO"] == "1"
    out = subprocess.run(
        [sys.executable, "-m", "ops.cli", "up", "--help"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "--demo" in out.stdout and "--no-demo" not in out.stdout


# --- webhooks: capability, destinations, sealed secrets, Standard Webhooks ------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/admin",
        "http://localhost/x",  # a name that resolves to loopback
        "http://10.0.0.1/x",
        "http://192.168.1.10/x",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://100.100.100.200/",  # Alibaba's metadata (shared address space)
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",  # loopback in IPv6 clothing
        "http://[fd00:ec2::254]/",  # AWS metadata over IPv6
        "http://0.0.0.0:8000/",
        "ftp://93.184.216.34/x",
        "http://user:pw@93.184.216.34/x",  # credentials in a URL end up in logs
        "http://no-such-host.invalid/x",
    ],
)
def test_webhook_destinations_must_be_public(url):
    from api.notify.destinations import DestinationRefused, check

    with pytest.raises(DestinationRefused):
        check(url, ())


def test_operator_allow_list_and_public_addresses_pass():
    from api.notify.destinations import check

    assert str(check("https://93.184.216.34/hook", ()).address) == "93.184.216.34"
    allow = Settings(WEBHOOK_ALLOW_NETWORKS="127.0.0.1/32, 10.0.0.0/8").webhook_allowed_networks
    assert check("http://127.0.0.1:9/x", allow).pinned_url() == "http://127.0.0.1:9/x"
    check("http://10.1.2.3/x", allow)
    with pytest.raises(ValueError):
        Settings(WEBHOOK_ALLOW_NETWORKS="10.0.0.0/33")  # a typo fails at start-up


class _Receiver:
    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = _Receiver()
    yield r
    r.close()


def _event(tenant_id: str) -> dict:
    from datetime import UTC, datetime

    now = datetime.now(UTC).isoformat()
    return {
        "event_id": f"report_ready:{uuid.uuid4().hex}", "export_id": uuid.uuid4().hex,
        "tenant_id": tenant_id, "user_id": "boss", "title": "ready", "body": "ready",
        "status_url": "/v1/exports/x", "download_url": "", "link_expires_at": now,
        "occurred_at": now, "report": "learners", "format": "csv", "rows": 1, "bytes": 1,
    }  # fmt: skip


@pytest.fixture
def hooks(store, tmp_path):
    """A tenant, a Notifier as the API builds it, with loopback allowed."""
    from cryptography.fernet import Fernet

    from api.notify.fanout import Notifier
    from api.sealing import Sealer
    from api.tenants import TenantRegistry
    from core.secrets import load_secrets

    settings = Settings(
        SKILLSTREAM_RUN_DIR=tmp_path, WEBHOOK_ALLOW_NETWORKS="127.0.0.1/32", WEBHOOK_BACKOFF_S=0
    )
    sealer = Sealer(Fernet.generate_key().decode(), "webhook secrets")
    pii = Sealer(load_secrets(settings).pii_keys, "pii salts")
    tenant, _ = TenantRegistry(store, pii).create(f"hooks-{uuid.uuid4().hex[:6]}")
    return settings, sealer, Notifier(store, settings, None, sealer), tenant.tenant_id


def test_webhook_is_signed_standard_and_sealed_at_rest(store, hooks, receiver):
    from standardwebhooks import Webhook as Verifier

    from api.notify.config import add_webhook

    settings, sealer, notifier, tid = hooks
    url = f"http://127.0.0.1:{receiver.port}/hook"
    hook = add_webhook(store, tid, url, "boss", sealer, settings.webhook_allowed_networks)
    assert hook.secret.startswith("whsec_")
    raw = store.query("SELECT secret FROM webhooks WHERE webhook_id = {w:String}",
                      {"w": hook.webhook_id})  # fmt: skip
    assert raw and all(r["secret"].startswith("fernet:") for r in raw)
    assert hook.secret not in repr(raw) and hook.secret not in repr(hook)
    event = _event(tid)
    assert notifier.fan_out(event)[f"webhook:{hook.webhook_id}"] == "sent"
    headers, body = receiver.requests[-1]
    data = Verifier(hook.secret).verify(body, headers)["data"]
    assert data["export_id"] == event["export_id"]
    assert "download_url" not in data  # no bearer link to the file for a third party


def test_webhooks_flag_is_enforced_at_delivery(store, hooks, receiver):
    from api.capabilities import set_flags
    from api.notify.config import add_webhook
    from api.sealing import Sealer
    from api.tenants import TenantRegistry
    from core.secrets import load_secrets

    settings, sealer, notifier, tid = hooks
    url = f"http://127.0.0.1:{receiver.port}/hook"
    hook = add_webhook(store, tid, url, "boss", sealer, settings.webhook_allowed_networks)
    tenants = TenantRegistry(store, Sealer(load_secrets(settings).pii_keys, "pii salts"))
    set_flags(store, tenants, tid, enable=[], disable=["webhooks"],
              actor_id="ops", actor_role="platform_admin")  # fmt: skip
    assert notifier.fan_out(_event(tid))[f"webhook:{hook.webhook_id}"] == "refused"
    assert receiver.requests == []
    log = store.query(
        "SELECT status, detail FROM notification_deliveries FINAL WHERE tenant_id = {t:String}"
        " AND channel = 'webhook'",
        {"t": tid},
    )
    assert [(r["status"], "webhooks is off" in r["detail"]) for r in log] == [("refused", True)]


def test_delivery_goes_to_the_checked_address_not_a_rebound_name(
    store, hooks, receiver, monkeypatch
):
    from api.notify import destinations
    from api.notify.config import add_webhook

    settings, sealer, notifier, tid = hooks
    answers = {"hooks.example.test": ["127.0.0.1"]}
    monkeypatch.setattr(
        destinations,
        "resolve",
        lambda host, port: [destinations.ip_address(a) for a in answers[host]],
    )
    url = f"http://hooks.example.test:{receiver.port}/hook"
    hook = add_webhook(store, tid, url, "boss", sealer, settings.webhook_allowed_networks)
    # pinned: the request reached the address checked, with the name as Host
    assert notifier.fan_out(_event(tid))[f"webhook:{hook.webhook_id}"] == "sent"
    assert receiver.requests[-1][0]["Host"] == f"hooks.example.test:{receiver.port}"
    # the name now points at the metadata service: refused at delivery, no retries
    answers["hooks.example.test"] = ["169.254.169.254"]
    assert notifier.fan_out(_event(tid))[f"webhook:{hook.webhook_id}"] == "refused"
    assert len(receiver.requests) == 1


def test_legacy_plain_webhook_secrets_are_sealed_at_start(store, hooks):
    import time as _time
    from datetime import UTC, datetime

    from api.notify.config import reseal_secrets, webhooks

    _, sealer, _, tid = hooks
    plain = "ab" * 32  # what an older version stored
    store.insert("webhooks", [{
        "tenant_id": tid, "webhook_id": "wh_legacy", "url": "https://93.184.216.34/h",
        "secret": plain, "active": 1, "created_by": "old", "created_at": datetime.now(UTC),
        "version": _time.time_ns(),
    }])  # fmt: skip
    assert reseal_secrets(store, sealer) >= 1
    assert [h.secret for h in webhooks(store, tid, sealer)] == [plain]  # still the same secret
    every_version = store.query("SELECT secret FROM webhooks WHERE tenant_id = {t:String}",
                                {"t": tid})  # fmt: skip
    assert plain not in repr(every_version)  # merged away, not merely superseded
    assert reseal_secrets(store, sealer) == 0


def test_webhook_registration_checks_flag_and_destination(plain_api):
    from api.capabilities import set_flags
    from api.security import issue_token

    ctx = plain_api.ctx
    tenant, _ = ctx.tenants.create(f"wh-{uuid.uuid4().hex[:6]}")
    token = issue_token(
        ctx.secrets.token_secret,
        tenant_id=tenant.tenant_id,
        tenant_name=tenant.name,
        role="company_admin",
        user_id="boss",
        ttl_s=600,
    )
    h = {"Authorization": f"Bearer {token}"}

    def post(url: str) -> httpx.Response:
        return httpx.post(f"{plain_api.url}/v1/webhooks", json={"url": url}, headers=h)

    r = post("http://169.254.169.254/latest/meta-data/")
    assert r.status_code == 422 and "not a public address" in r.text
    assert post(f"{plain_api.url}/v1/admin/tenants").status_code == 422  # the API itself
    set_flags(ctx.store, ctx.tenants, tenant.tenant_id, enable=[], disable=["webhooks"],
              actor_id="ops", actor_role="platform_admin")  # fmt: skip
    r = post("https://93.184.216.34/hook")
    assert r.status_code == 403 and "webhooks is off" in r.text


# --- secrets: one key per purpose, rotation -------------------------------------


def test_one_key_per_purpose_and_no_weak_or_shared_secrets(tmp_path):
    import json

    from pydantic import ValidationError

    from core.secrets import SecretsError, load_secrets

    s = load_secrets(Settings(SKILLSTREAM_RUN_DIR=tmp_path))
    values = [s.token_secret, s.admin_secret, s.export_link_secret, s.pii_keys, s.webhook_keys,
              s.sso_keys]  # fmt: skip
    assert len(set(values)) == 6
    assert oct((tmp_path / "secrets.json").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ValidationError):
        Settings(SKILLSTREAM_TOKEN_SECRET="short")
    same = "x" * 40
    with pytest.raises(SecretsError):
        load_secrets(Settings(SKILLSTREAM_RUN_DIR=tmp_path, SKILLSTREAM_TOKEN_SECRET=same,
                              SKILLSTREAM_EXPORT_LINK_SECRET=same))  # fmt: skip
    # a key file from before: its token secret stays (tokens out there keep working)
    old = tmp_path / "old"
    old.mkdir()
    (old / "secrets.json").write_text(json.dumps({"token_secret": "t" * 43, "admin_secret": "a"}))
    upgraded = load_secrets(Settings(SKILLSTREAM_RUN_DIR=old))
    assert upgraded.token_secret == "t" * 43 and upgraded.export_link_secret != "t" * 43
    # every key from the environment: none generated, no key file written
    from cryptography.fernet import Fernet

    bare = tmp_path / "bare"
    env = {f"SKILLSTREAM_{n}": f"{n.lower()}-{'z' * 40}" for n in ("TOKEN_SECRET", "ADMIN_SECRET",
           "EXPORT_LINK_SECRET")}  # fmt: skip
    env |= {"SKILLSTREAM_PII_KEYS": Fernet.generate_key().decode(),
            "SKILLSTREAM_WEBHOOK_KEYS": Fernet.generate_key().decode(),
            "SKILLSTREAM_SSO_KEYS": Fernet.generate_key().decode()}  # fmt: skip
    given = load_secrets(Settings(SKILLSTREAM_RUN_DIR=bare, **env))
    assert given.token_secret.startswith("token_secret-") and not bare.exists()


def test_export_links_are_not_signed_with_the_token_secret(plain_api):
    from api.exports.storage import LocalObjectStore

    ctx = plain_api.ctx
    assert ctx.secrets.export_link_secret != ctx.secrets.token_secret
    forged = LocalObjectStore(ctx.settings.export_path, ctx.secrets.token_secret)
    expires = 2_000_000_000
    assert not ctx.objects.check("k.csv", expires, forged.signature("k.csv", expires))
    assert ctx.objects.check("k.csv", expires, ctx.objects.signature("k.csv", expires))


@pytest.mark.stack
def test_token_key_rotation_refuses_old_tokens_and_accepts_new(
    tmp_path_factory, store, kafka_bootstrap
):
    from api.security import issue_token
    from tests.conftest import LiveApi
    from tests.support.stack import cli

    settings = _settings(tmp_path_factory, kafka_bootstrap)

    def token(api) -> str:
        t, _ = api.ctx.tenants.create(f"rot-{uuid.uuid4().hex[:6]}")
        return issue_token(api.ctx.secrets.token_secret, tenant_id=t.tenant_id,
                           tenant_name=t.name, role="learner", user_id="u1", ttl_s=600)  # fmt: skip

    def get(api, tok: str) -> httpx.Response:
        h = {"Authorization": f"Bearer {tok}"}
        return httpx.get(f"{api.url}/v1/notifications/preferences", headers=h)

    def status(api, tok: str) -> int:
        return get(api, tok).status_code

    before = LiveApi(settings, store, kafka_bootstrap)
    old = token(before)
    assert status(before, old) == 200
    before.close()
    env = {"PATH": "/usr/bin:/bin", "SKILLSTREAM_RUN_DIR": str(settings.run_dir)}
    out = cli(env, "secrets", "rotate", "token")
    assert out.returncode == 0 and "rotated token" in out.stdout, out.stderr
    refused = cli({**env, "SKILLSTREAM_TOKEN_SECRET": "s" * 40}, "secrets", "rotate", "token")
    assert refused.returncode == 1 and "is set" in refused.stderr
    after = LiveApi(settings, store, kafka_bootstrap)
    try:
        refused = get(after, old)  # signed with the retired key
        assert refused.status_code == 401 and "rotated" in refused.json()["detail"]
        assert status(after, token(after)) == 200
    finally:
        after.close()


def test_pii_key_rotation_reseals_salts_under_the_new_key(store, tmp_path):
    from api.sealing import Sealer
    from api.tenants import TenantRegistry, reseal_salts
    from core.secrets import load_secrets, rotate_local

    settings = Settings(SKILLSTREAM_RUN_DIR=tmp_path)
    first = Sealer(load_secrets(settings).pii_keys, "PII salts")
    tenant, _ = TenantRegistry(store, first).create(f"pii-{uuid.uuid4().hex[:6]}")
    rotate_local(settings, "pii_keys")
    both = Sealer(load_secrets(settings).pii_keys, "PII salts")
    assert reseal_salts(store, both) >= 1
    newest_only = Sealer(load_secrets(settings).pii_keys.split(",")[0], "PII salts")
    again = TenantRegistry(store, newest_only).by_id(tenant.tenant_id)
    assert again is not None and again.pii_salt == tenant.pii_salt  # the old key may go now
    rows = store.query("SELECT pii_salt FROM tenants WHERE tenant_id = {t:String}",
                       {"t": tenant.tenant_id})  # fmt: skip
    assert len(rows) == 1 and tenant.pii_salt not in rows[0]["pii_salt"]


def test_demo_page_says_it_is_a_demo(demo_api, browser):  # noqa: F811 (the fixture)
    page = browser.new_page()
    page.goto(f"{demo_api.url}/")
    banner = page.locator("#demo-banner")
    banner.wait_for(state="visible", timeout=20000)
    assert "Demo mode" in banner.inner_text() and "any role" in banner.inner_text()
    page.close()


def test_the_store_says_which_columns_are_sealed(store):
    rows = store.query(
        "SELECT table, comment FROM system.columns WHERE database = currentDatabase()"
        " AND (table, name) IN (('tenants', 'pii_salt'), ('webhooks', 'secret'))"
    )
    assert {r["table"] for r in rows if r["comment"].startswith("sealed: fernet")} == {
        "tenants", "webhooks"
    }  # fmt: skip
