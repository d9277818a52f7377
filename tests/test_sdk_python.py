"""The Python emitter (sdk/python, `skillstream.client`) against the running
API on its own Kafka, through a 503 window (the broker killed mid-stream):
every event lands, none is rejected, retries reuse their ids."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from skillstream.client import Emitter, backoff_delay, parse_retry_after

from api.ingest.pii import hash_pii
from core.settings import PROJECT_ROOT, Settings
from ops.kafka_launcher import KafkaCluster
from tests.conftest import LiveApi
from tests.support.kafka import read_events

CLIENT = PROJECT_ROOT / "sdk" / "python" / "skillstream" / "client.py"


def test_the_emitter_imports_only_the_standard_library_and_httpx():
    tree = ast.parse(CLIENT.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert roots - sys.stdlib_module_names == {"httpx"}
    assert not (Path(CLIENT).parent / "__init__.py").exists()  # a namespace package


def test_backoff_and_retry_after():
    assert backoff_delay(0, 0.5, 30, rand=lambda: 0) == 0.25
    assert backoff_delay(10, 0.5, 30, rand=lambda: 1) == 30
    assert backoff_delay(0, 0.5, 30, retry_after_s=5, rand=lambda: 1) == 5
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.kafka
def test_emitter_through_a_503_window(tmp_path, store, unique):
    base = Settings()
    cluster = KafkaCluster.ensure(
        tmp_path / "kafka", base.cache_dir, base.kafka_version, heap="256m"
    )
    settings = Settings(
        SKILLSTREAM_RUN_DIR=tmp_path / "run",
        KAFKA_BOOTSTRAP=cluster.bootstrap,
        TOPIC_PREFIX=f"em{unique}",
        TOPIC_PARTITIONS=3,
        INGEST_ACK_TIMEOUT_S=2,
    )
    api = LiveApi(settings, store, cluster.bootstrap)
    statuses: list[int] = []
    answered: list[str] = []
    lock = threading.Lock()

    def record(response: httpx.Response) -> None:
        if response.request.url.path != "/v1/events/batch":
            return
        response.read()
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 200:
                body = response.json()
                assert body["rejected"] == [], body["rejected"]
                answered.extend(body["accepted"] + body["duplicates"])

    http = httpx.Client(timeout=30, event_hooks={"response": [record]})
    errors: list[tuple[str, dict]] = []
    try:
        tenant_id, key = api.new_tenant(f"emit-{unique}")
        em = Emitter(
            api.url, key, persona="student", flush_at=10, flush_interval_s=0.2,
            backoff_base_s=0.2, backoff_max_s=1.0, client=http, flush_at_exit=False,
            on_error=lambda kind, detail: errors.append((kind, detail)),
        )  # fmt: skip
        ids: list[str] = []

        def emit_many(worker: int, n: int) -> None:
            for i in range(n):
                cid = em.emit(
                    "lesson_completed", {"lesson_id": f"l{i}", "duration_minutes": 5},
                    user_id=f"u{worker}", program_id="prog_1",
                )  # fmt: skip
                with lock:
                    ids.append(cid)

        threads = [threading.Thread(target=emit_many, args=(w, 15)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        email = f"Maya.{unique}@Example.com"
        ids.append(em.emit("session_started", {"auth_method": "sso"}, user_id="u0", email=email))
        assert em.flush(30)
        assert set(answered) == set(ids) and len(ids) == 61

        cluster.stop_node(1, hard=True)  # the 503 window opens
        emit_many(9, 20)
        deadline = time.monotonic() + 30
        while 503 not in statuses and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 503 in statuses
        assert em.queued > 0
        cluster.restart_node(1)
        assert em.flush(90)
        assert em.close(5)

        assert set(answered) == set(ids) and len(ids) == 81
        assert em.stats["retries"] >= 1 and em.stats["rejected"] == 0
        assert em.stats["dropped"] == 0 and errors == []
        pairs = read_events(cluster.bootstrap, api.ctx.raw_topic, expect=81, timeout=60)
        decoded = [ev for _, ev in pairs]
        assert {d["client_event_id"] for d in decoded} == set(ids)
        salt = api.ctx.tenants.by_id(tenant_id).pii_salt
        hashed = [d for d in decoded if d["pii_hash"]]
        assert {d["pii_hash"] for d in hashed} == {hash_pii(salt, "email", email)}
    finally:
        api.close()
        cluster.stop()


def test_emitter_honours_retry_after_and_never_retries_rejections(settings, store, kafka_bootstrap):
    settings = settings.model_copy(update={"ingest_rate_per_s": 4.0})
    api = LiveApi(settings, store, kafka_bootstrap)
    answers: list[tuple[float, int, str | None]] = []

    def record(response: httpx.Response) -> None:
        if response.request.url.path == "/v1/events/batch":
            answers.append(
                (time.monotonic(), response.status_code, response.headers.get("Retry-After"))
            )

    errors: list[tuple[str, dict]] = []
    try:
        _, key = api.new_tenant(f"emit429-{settings.topic_prefix}")
        em = Emitter(
            api.url, key, persona="student", flush_at=10_000, max_batch=500,
            backoff_base_s=0.05, backoff_max_s=0.1, flush_at_exit=False,
            client=httpx.Client(timeout=30, event_hooks={"response": [record]}),
            on_error=lambda kind, detail: errors.append((kind, detail)),
        )  # fmt: skip
        # the tenant's bucket holds 1,000 events: the third batch waits for Retry-After
        for i in range(1010):
            em.emit("session_started", {"auth_method": "sso"}, user_id=f"u{i % 7}")
        em.emit("lesson_completed", {"lesson_id": "les_1"}, user_id="u1")  # no program_id
        twice = em.emit("session_started", {"auth_method": "sso"}, user_id="u1")
        em.emit("session_started", {"auth_method": "sso"}, user_id="u1", client_event_id=twice)
        assert em.flush(30)
        em.close(5)
    finally:
        api.close()
    codes = [c for _, c, _ in answers]
    assert codes == [200, 200, 429, 200], codes
    (t429, _, wait), (t_retry, _, _) = answers[2], answers[3]
    assert t_retry - t429 >= int(wait) - 0.05  # Retry-After, not the 0.05-0.1 s backoff
    assert [k for k, _ in errors] == ["rejected"]
    assert errors[0][1]["errors"] == [
        {"field": "program_id", "reason": "required for lesson_completed"}
    ]
    s = em.stats
    assert (s["sent"], s["duplicates"], s["rejected"], s["queued"]) == (1011, 1, 1, 0)


EXIT_SCRIPT = """
import sys
from skillstream.client import Emitter

em = Emitter(sys.argv[1], sys.argv[2], persona="student", flush_interval_s=600)
for i in range(5):
    print(em.emit("session_started", {"auth_method": "sso"}, user_id=f"u{i}"))
"""


@pytest.mark.stack
def test_emitter_flushes_at_interpreter_exit(live_api, unique):
    _, key = live_api.new_tenant(f"exit-{unique}")
    out = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, live_api.url, key],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    ids = set(out.stdout.split())
    assert len(ids) == 5
    pairs = read_events(live_api.ctx.kafka_bootstrap, live_api.ctx.raw_topic, expect=5)
    assert {ev["client_event_id"] for _, ev in pairs} == ids
