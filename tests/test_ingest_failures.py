"""The front door when Kafka fails, and under random input."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.settings import Settings
from ops.kafka_launcher import KafkaCluster
from schemas.examples import example_event
from tests.conftest import LiveApi
from tests.support.kafka import read_events


@pytest.mark.kafka
def test_broker_down_gives_503_and_nothing_unacked_is_reported_accepted(tmp_path, store, unique):
    base = Settings()
    cluster = KafkaCluster.ensure(
        tmp_path / "kafka", base.cache_dir, base.kafka_version, heap="256m"
    )
    settings = Settings(
        SKILLSTREAM_RUN_DIR=tmp_path / "run",
        KAFKA_BOOTSTRAP=cluster.bootstrap,
        TOPIC_PREFIX=f"down{unique}",
        TOPIC_PARTITIONS=3,
        INGEST_ACK_TIMEOUT_S=3,
    )
    api = LiveApi(settings, store, cluster.bootstrap)
    reported: list[str] = []
    try:
        _, key = api.new_tenant(f"down-{unique}")
        headers = {"Authorization": f"Bearer {key}"}
        url = f"{api.url}/v1/events/batch"
        before = [example_event("session_started", client_event_id=f"b{i}") for i in range(20)]
        r = httpx.post(url, json={"events": before}, headers=headers, timeout=30)
        assert r.status_code == 200
        reported += r.json()["accepted"]

        cluster.stop_node(1, hard=True)
        during = [example_event("session_started", client_event_id=f"d{i}") for i in range(20)]
        r = httpx.post(url, json={"events": during}, headers=headers, timeout=30)
        assert r.status_code == 503, r.text
        assert int(r.headers["Retry-After"]) >= 1
        assert "accepted" not in r.json()

        cluster.restart_node(1)
        # the client retries the whole batch: accepted now, each id exactly once
        for _ in range(10):
            r = httpx.post(url, json={"events": during}, headers=headers, timeout=30)
            if r.status_code == 200:
                break
        assert r.status_code == 200
        reported += r.json()["accepted"] + r.json()["duplicates"]
        assert sorted(reported) == sorted([e["client_event_id"] for e in before + during])

        pairs = read_events(cluster.bootstrap, api.ctx.raw_topic, expect=40)
        on_topic = {ev["client_event_id"] for _, ev in pairs}
        assert set(reported) <= on_topic  # nothing reported that Kafka lacks
    finally:
        api.close()
        cluster.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        k: json_values | st.text(max_size=30)
        for k in (
            "event_name", "client_event_id", "event_timestamp", "anonymous_id", "user_id",
            "persona", "context_page", "opt_out_status", "properties", "readiness_score",
            "pii_hash", "email", "tenant_id",
        )
    },
)  # fmt: skip


def test_random_input_never_gives_500(live_api, unique):
    _, key = live_api.new_tenant(f"fuzz-{unique}")
    client = httpx.Client(
        base_url=live_api.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )

    @hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        body=st.one_of(
            st.binary(max_size=200),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.lists(event_like, max_size=5).map(lambda evs: json.dumps({"events": evs}).encode()),
            st.lists(
                st.sampled_from(
                    ["session_started", "lesson_completed", "assessment_completed"]
                ).map(example_event),
                max_size=3,
            ).map(lambda evs: json.dumps({"events": evs}).encode()),
        )
    )
    def check(body: bytes) -> None:
        r = client.post("/v1/events/batch", content=body)
        assert r.status_code < 500, (r.status_code, r.text, body)
        if r.status_code == 200:
            out = r.json()
            assert set(out) == {"accepted", "duplicates", "rejected"}
            for rej in out["rejected"]:
                assert rej["errors"] and all(e["reason"] for e in rej["errors"])

    check()
