"""What the SDKs need from the API: per-tenant CORS on the ingest endpoints
(preflights answered from the allow-list, never through Kafka), none on
report and admin endpoints, page-exit beacons authenticated in the body, the
read-only event dictionary, and one e-mail hash whichever side computed it."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest

from api.ingest.pii import client_salt, email_digest, hash_pii
from api.origins import OriginError, normalise_origin
from schemas.examples import example_event
from tests.support.kafka import read_events

SITE = "https://app.example.test"
OTHER = "https://evil.example.test"


def _tenant(live_api, unique: str, suffix: str = "") -> tuple[str, str, str]:
    name = f"sdk-{unique}{suffix}"
    tid, key = live_api.new_tenant(name)
    return tid, name, key


def _cli(live_api, monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    from ops import cli

    s = live_api.settings
    s.api_file.parent.mkdir(parents=True, exist_ok=True)
    s.api_file.write_text(json.dumps({"url": live_api.url, "pid": os.getpid()}))
    monkeypatch.setattr(cli, "get_settings", lambda: s)
    rc = cli.main(list(argv))
    return rc, capsys.readouterr().out


def test_origins_are_normalised_or_refused():
    assert normalise_origin("HTTPS://App.Example.com:443/") == "https://app.example.com"
    assert normalise_origin("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    for bad in ("app.example.com", "ftp://x.example", "https://x.example/path", "*", "https://"):
        with pytest.raises(OriginError):
            normalise_origin(bad)


def test_cors_per_tenant_preflight_beacon_and_audit(live_api, unique, monkeypatch, capsys):
    tid, name, key = _tenant(live_api, unique)
    _, other_name, other_key = _tenant(live_api, unique, "b")
    url = live_api.url
    pre = {"Origin": SITE, "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}  # fmt: skip

    # nothing allowed yet: the preflight is refused and carries no CORS header
    r = httpx.options(f"{url}/v1/events/batch", headers=pre)
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers

    rc, out = _cli(live_api, monkeypatch, capsys, "tenant", "origins", name, "--add", SITE + "/")
    assert rc == 0 and out.split() == [SITE]
    rows = live_api.ctx.store.query(
        "SELECT action, detail FROM audit_events WHERE tenant_id = {t:String}"
        " AND action = 'tenant.origins'",
        {"t": tid},
    )
    assert len(rows) == 1 and SITE in rows[0]["detail"]
    rc, _ = _cli(live_api, monkeypatch, capsys, "tenant", "origins", name, "--add", "nope")
    assert rc == 1

    # preflight: answered from the allow-list; the producer is never asked
    def no_kafka(*a, **k):
        raise AssertionError("a preflight touched the producer")

    monkeypatch.setattr(live_api.ctx.producer, "send_all", no_kafka)
    r = httpx.options(f"{url}/v1/events/batch", headers=pre)
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == SITE
    assert "authorization" in r.headers["access-control-allow-headers"]
    assert "POST" in r.headers["access-control-allow-methods"]
    r = httpx.options(
        f"{url}/v1/events/dictionary", headers={**pre, "Access-Control-Request-Method": "GET"}
    )
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == SITE
    monkeypatch.undo()

    # report and admin endpoints: no CORS at all
    for path in ("/v1/reports/engagement", "/v1/admin/tenants", "/v1/governance/capabilities"):
        r = httpx.options(f"{url}{path}", headers={**pre, "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in r.headers, path
        r = httpx.get(f"{url}{path}", headers={"Origin": SITE})
        assert "access-control-allow-origin" not in r.headers, path

    # configured, the report endpoints answer those origins (GET only); admin never
    monkeypatch.setattr(live_api.ctx.settings, "report_cors_origins", f"{OTHER},{SITE}")
    get_pre = {**pre, "Access-Control-Request-Method": "GET"}
    r = httpx.options(f"{url}/v1/reports/engagement", headers=get_pre)
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == SITE
    r = httpx.options(f"{url}/v1/admin/tenants", headers=get_pre)
    assert "access-control-allow-origin" not in r.headers
    monkeypatch.undo()

    # the real request: allowed for this tenant's key, refused for another tenant's
    ev = example_event("session_started", client_event_id=f"{unique}-c1")
    r = httpx.post(f"{url}/v1/events/batch", json={"events": [ev]},
                   headers={"Authorization": f"Bearer {key}", "Origin": SITE})  # fmt: skip
    assert r.status_code == 200 and r.json()["accepted"] == [ev["client_event_id"]]
    assert r.headers["access-control-allow-origin"] == SITE
    assert "Retry-After" in r.headers["access-control-expose-headers"]
    r = httpx.post(f"{url}/v1/events/batch", json={"events": [ev]},
                   headers={"Authorization": f"Bearer {other_key}", "Origin": SITE})  # fmt: skip
    assert r.status_code == 403 and other_name in r.json()["detail"]
    r = httpx.post(f"{url}/v1/events/batch", json={"events": [ev]},
                   headers={"Authorization": f"Bearer {key}", "Origin": OTHER})  # fmt: skip
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers

    # a beacon: text/plain, the write key in the body, no custom header
    ev2 = example_event("session_started", client_event_id=f"{unique}-c2")
    beacon = json.dumps({"write_key": key, "events": [ev2]})
    plain = {"Content-Type": "text/plain;charset=UTF-8", "Origin": SITE}
    r = httpx.post(f"{url}/v1/events/batch", content=beacon, headers=plain)
    assert r.status_code == 200 and r.json()["accepted"] == [ev2["client_event_id"]]
    r = httpx.post(f"{url}/v1/events/batch", content=json.dumps({"events": [ev2]}),
                   headers={"Content-Type": "text/plain", "Origin": SITE})  # fmt: skip
    assert r.status_code == 401 and "write_key" in r.json()["detail"]
    r = httpx.post(f"{url}/v1/events/batch", content=beacon,
                   headers={"Content-Type": "text/plain", "Origin": OTHER})  # fmt: skip
    assert r.status_code == 403

    # removal takes effect at once
    rc, out = _cli(live_api, monkeypatch, capsys, "tenant", "origins", name, "--remove", SITE)
    assert rc == 0 and out.strip() == ""
    r = httpx.options(f"{url}/v1/events/batch", headers=pre)
    assert r.status_code == 403


def test_dictionary_and_the_client_side_email_hash(live_api, unique):
    tid, _, key = _tenant(live_api, unique)
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{live_api.url}/v1/events/dictionary").status_code == 401
    r = httpx.get(f"{live_api.url}/v1/events/dictionary", headers=auth)
    assert r.status_code == 200, r.text
    d = r.json()
    assert set(d["essential"]) == {
        "session_started", "settings_tracking_opt_out", "settings_tracking_opt_in",
    }  # fmt: skip
    assert {e["name"] for e in d["events"]} >= {"lesson_completed", "session_started"}
    salt = live_api.ctx.tenants.by_id(tid).pii_salt
    assert d["email_hash_salt"] == client_salt(salt) and len(d["email_hash_salt"]) == 32

    # the SDK's digest and a raw e-mail give the same stored hash
    email = f"  Maya.{unique}@Example.COM "
    digest = hashlib.sha256((d["email_hash_salt"] + email.strip().lower()).encode()).hexdigest()
    assert digest == email_digest(d["email_hash_salt"], email)
    assert hash_pii(salt, "email_sha256", digest) == hash_pii(salt, "email", email)
    evs = [
        example_event("session_started", client_event_id=f"{unique}-h1", email_sha256=digest),
        example_event("session_started", client_event_id=f"{unique}-h2", email=email),
        example_event("session_started", client_event_id=f"{unique}-h3", email_sha256="abc"),
        example_event("session_started", client_event_id=f"{unique}-h4", email=email,
                      email_sha256=digest),
    ]  # fmt: skip
    r = httpx.post(f"{live_api.url}/v1/events/batch", json={"events": evs}, headers=auth)
    body = r.json()
    assert body["accepted"] == [f"{unique}-h1", f"{unique}-h2"]
    errs = {x["client_event_id"]: x["errors"] for x in body["rejected"]}
    assert errs[f"{unique}-h3"][0]["field"] == "email_sha256"
    assert "64 lowercase hex" in errs[f"{unique}-h3"][0]["reason"]
    assert errs[f"{unique}-h4"] == [
        {"field": "email_sha256", "reason": "send email or email_sha256, not both"}
    ]

    pairs = read_events(live_api.ctx.kafka_bootstrap, live_api.ctx.raw_topic, expect=2)
    hashes = {ev["pii_hash"] for _, ev in pairs}
    assert hashes == {hash_pii(salt, "email", email)}
    for m, _ in pairs:
        assert email.strip().lower().encode() not in m.value() and digest.encode() not in m.value()
