"""`POST /v1/events/batch` against the real API, real Kafka, real ClickHouse."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.ingest.batches import partition_for
from schemas.examples import example_event
from tests.support.kafka import read_events


def post(api, key: str, events, **kw) -> httpx.Response:
    return httpx.post(
        f"{api.url}/v1/events/batch",
        json={"events": events},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        **kw,
    )


def test_mixed_batch_gives_exact_lists_and_only_valid_events_reach_kafka(live_api, unique):
    _, key = live_api.new_tenant(f"mixed-{unique}")
    good1 = example_event("lesson_completed", client_event_id=f"{unique}-1")
    good2 = example_event("assessment_completed", client_event_id=f"{unique}-2")
    bad = example_event("assessment_completed", client_event_id=f"{unique}-3")
    del bad["assessment_id"]
    bad["readiness_score"] = 140
    dup = dict(good1)
    r = post(live_api, key, [good1, bad, good2, dup])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == [f"{unique}-1", f"{unique}-2"]
    assert body["duplicates"] == [f"{unique}-1"]
    assert len(body["rejected"]) == 1
    rej = body["rejected"][0]
    assert rej["index"] == 1 and rej["client_event_id"] == f"{unique}-3"
    fields = {e["field"]: e["reason"] for e in rej["errors"]}
    assert fields["assessment_id"] == "required for assessment_completed"
    assert "between 0 and 100" in fields["readiness_score"]

    pairs = read_events(live_api.ctx.kafka_bootstrap, live_api.ctx.raw_topic, expect=2)
    decoded = [d for _, d in pairs]
    assert sorted(d["client_event_id"] for d in decoded) == [f"{unique}-1", f"{unique}-2"]
    tenant_id = live_api.ctx.tenants.by_write_key(key).tenant_id
    # one learner, so one partition: one record holds both, where the
    # learner's key sends it
    assert len({m.offset() for m, _ in pairs}) == 1
    parts = live_api.ctx.settings.topic_partitions
    for m, d in pairs:
        assert d["tenant_id"] == tenant_id
        assert m.partition() == partition_for(f"{tenant_id}:usr_12345".encode(), parts)
        assert dict(m.headers())["tenant_id"] == tenant_id.encode()
        assert d["persona"] == "student"
        assert d["received_at"] >= d["event_timestamp"] - timedelta(seconds=5)


def test_replayed_batch_reports_duplicates(live_api, unique):
    _, key = live_api.new_tenant(f"replay-{unique}")
    batch = [example_event("session_started", client_event_id=f"{unique}-{i}") for i in range(5)]
    first = post(live_api, key, batch).json()
    assert len(first["accepted"]) == 5
    again = post(live_api, key, batch).json()
    assert again == {"accepted": [], "duplicates": [e["client_event_id"] for e in batch],
                     "rejected": []}  # fmt: skip
    assert len(read_events(live_api.ctx.kafka_bootstrap, live_api.ctx.raw_topic, expect=5)) == 5


def test_same_id_in_two_tenants_is_not_a_duplicate(live_api, unique):
    _, key_a = live_api.new_tenant(f"a-{unique}")
    _, key_b = live_api.new_tenant(f"b-{unique}")
    ev = example_event("session_started", client_event_id=f"{unique}-same")
    assert post(live_api, key_a, [ev]).json()["accepted"] == [f"{unique}-same"]
    assert post(live_api, key_b, [ev]).json()["accepted"] == [f"{unique}-same"]


def test_pii_is_hashed_before_kafka_and_never_in_topic_bytes(live_api, unique):
    tenant_id, key = live_api.new_tenant(f"pii-{unique}")
    email, phone = f"Maya.{unique}@Example.com", "+1 (555) 010-7788"
    ev = example_event("session_started", client_event_id=f"{unique}-p", email=email, phone=phone)
    assert post(live_api, key, [ev]).json()["accepted"] == [f"{unique}-p"]
    pairs = read_events(live_api.ctx.kafka_bootstrap, live_api.ctx.raw_topic, expect=1)
    raw = b"".join(m.value() + (m.key() or b"") for m, _ in pairs)
    # needles that hex digests and ids cannot contain by chance ("555" alone
    # turned up inside an HMAC now and then)
    for needle in (email, email.lower(), "(555)", "5550107788", "010-7788", "Maya"):
        assert needle.encode() not in raw
    salt = live_api.ctx.tenants.by_id(tenant_id).pii_salt
    # the canonical e-mail hash (api/ingest/pii.py): HMAC of the client-side digest
    client = hmac.new(salt.encode(), b"skillstream:email-client-salt:v1", hashlib.sha256)
    digest = hashlib.sha256((client.hexdigest()[:32] + email.lower()).encode()).hexdigest()
    expected = hmac.new(salt.encode(), digest.encode(), hashlib.sha256).hexdigest()
    decoded = pairs[0][1]
    assert decoded["pii_hash"] == expected
    assert decoded["phone_hash"] and len(decoded["phone_hash"]) == 64


def test_server_set_fields_and_bad_values_are_rejected_by_name(live_api, unique):
    _, key = live_api.new_tenant(f"fields-{unique}")
    now = datetime.now(UTC)
    cases = {
        "tenant_id": example_event("session_started", tenant_id="t_other"),
        "event_name": example_event("session_started", event_name="made_up_event"),
        "event_timestamp": example_event(
            "session_started", event_timestamp=(now + timedelta(hours=1)).isoformat()
        ),
        "persona": example_event("advisor_note_added", persona="student"),
        "pii_hash": example_event("session_started", pii_hash="not-a-hash"),
        "properties.bogus": example_event("session_started", properties={"bogus": 1}),
        "properties.duration_minutes": example_event(
            "lesson_completed", properties={"lesson_id": "l", "duration_minutes": "ten"}
        ),
        "client_event_id": example_event("session_started", client_event_id="has space"),
        "surprise": example_event("session_started", surprise=True),
    }
    old = example_event("session_started", at=now - timedelta(days=30))
    r = post(live_api, key, [*cases.values(), old, "not an object"])
    assert r.status_code == 200
    rejected = r.json()["rejected"]
    assert len(rejected) == len(cases) + 2
    for (field, _), rej in zip(cases.items(), rejected, strict=False):
        assert field in {e["field"] for e in rej["errors"]}, (field, rej)
    late = rejected[len(cases)]["errors"]
    assert late[0]["field"] == "event_timestamp" and "late-arrival" in late[0]["reason"]
    assert rejected[-1]["errors"][0]["reason"] == "event must be a JSON object"
    assert r.json()["accepted"] == []


def test_request_level_errors(live_api, unique):
    _, key = live_api.new_tenant(f"errors-{unique}")
    url = f"{live_api.url}/v1/events/batch"
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.post(url, json={"events": []}).status_code == 401
    assert (
        httpx.post(url, json={"events": []}, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    r = httpx.post(url, content=b"{not json", headers=auth)
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]
    # a half-cut emoji (JSON.stringify escapes the lone surrogate) and a
    # byte-order mark: the event is rejected, never its valid neighbour
    cut = example_event("survey_response_submitted", persona="student")
    cut["properties"]["free_text"] = "great \ud83d"
    fine = example_event("session_started")
    body = b"\xef\xbb\xbf" + json.dumps({"events": [cut, fine]}).encode()  # ASCII escapes
    r = httpx.post(url, content=body, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == [fine["client_event_id"]]
    assert [x["index"] for x in r.json()["rejected"]] == [0]
    assert httpx.post(url, json=[1, 2], headers=auth).status_code == 400
    max_events = live_api.settings.ingest_max_batch_events
    too_many = [example_event("session_started") for _ in range(max_events + 1)]
    assert httpx.post(url, json={"events": too_many}, headers=auth).status_code == 413
    huge = b'{"events": ["' + b"x" * (live_api.settings.ingest_max_body_bytes + 1) + b'"]}'
    assert httpx.post(url, content=huge, headers=auth).status_code == 413
    assert httpx.post(url, json={"events": []}, headers=auth).json() == {
        "accepted": [], "duplicates": [], "rejected": []
    }  # fmt: skip


def test_rate_limit_is_429_with_retry_after(live_api, unique):
    from api.ingest.ratelimit import RateLimiter

    _, key = live_api.new_tenant(f"rate-{unique}")
    live_api.ctx.rate_limiter = RateLimiter(rate_per_s=1, burst=10)
    batch = [example_event("session_started") for _ in range(8)]
    assert post(live_api, key, batch).status_code == 200
    r = post(live_api, key, batch)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_openapi_documents_fields_and_errors(live_api):
    spec = httpx.get(f"{live_api.url}/openapi.json").json()
    op = spec["paths"]["/v1/events/batch"]["post"]
    assert {"200", "400", "401", "413", "429", "503"} <= set(op["responses"])
    item = op["requestBody"]["content"]["application/json"]["schema"]["properties"]["events"]
    assert "client_event_id" in item["items"]["properties"]
    assert httpx.get(f"{live_api.url}/docs").status_code == 200


@pytest.mark.parametrize("name", ["lesson_completed", "survey_response_submitted"])
def test_examples_are_valid(live_api, unique, name):
    _, key = live_api.new_tenant(f"ex-{name}-{unique}")
    r = post(live_api, key, [example_event(name)])
    assert r.json()["rejected"] == [] and len(r.json()["accepted"]) == 1


def _whole_body_then_answer(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """What http.client (and so urllib and requests) does: write every byte
    of the body, only then read the answer (in 1 MB writes)."""
    import http.client
    import time
    from urllib.parse import urlsplit

    def paced(chunk: int = 1024 * 1024):
        for i in range(0, len(body), chunk):
            yield body[i : i + chunk]
            time.sleep(0.02)

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        headers = {**headers, "Content-Length": str(len(body))}
        conn.request("POST", u.path, body=paced(), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture(params=["h11", "httptools"])
def api_on(request, live_api):
    """The same app under each of uvicorn's HTTP implementations (h11 closes
    a connection whose request body was not read; httptools reads it on)."""
    import threading
    import time

    import uvicorn

    from api.app import create_app
    from ops.kafka_launcher import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(live_api.ctx), host="127.0.0.1", port=port, http=request.param,
            log_level="warning",
        )
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("auth", ["valid key", "unknown key"])
def test_a_client_that_writes_the_whole_body_first_gets_the_answer(live_api, api_on, unique, auth):
    """22 MB to a 5 MiB limit: the 413 (or the 401), not a connection reset."""
    _, key = live_api.new_tenant(f"big-{unique}")
    url = f"{api_on}/v1/events/batch"
    body = b'{"events": ["' + b"x" * (22 * 1024 * 1024) + b'"]}'
    headers = {
        "Authorization": f"Bearer {key if auth == 'valid key' else 'nope'}",
        "Content-Type": "application/json",
    }
    status, answer = _whole_body_then_answer(url, body, headers)
    assert status == (413 if auth == "valid key" else 401), answer
    if status == 413:
        assert b"body larger than" in answer
    # and the server is fine afterwards
    assert httpx.get(f"{api_on}/health", timeout=30).status_code in (200, 503)
