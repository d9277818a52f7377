"""A small fuzz run over every endpoint of the OpenAPI document, as every
kind of caller (bench/fuzz.py; the 100k-request run is `python -m
bench.fuzz`): no 5xx, nothing of another tenant, the server healthy after."""

from __future__ import annotations

import uuid

import pytest

from bench.fuzz import fuzz
from ops.settings import Settings


@pytest.fixture(scope="module")
def api(tmp_path_factory, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    s = Settings(
        SKILLSTREAM_RUN_DIR=tmp_path_factory.mktemp("fuzz") / "run",
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"z{uuid.uuid4().hex[:8]}",
        TOPIC_PARTITIONS=1,
        INGEST_RATE_PER_S=1e9,
    )
    live = LiveApi(s, store, kafka_bootstrap)
    yield live
    live.close()


@pytest.mark.timeout(240)
def test_fuzz_every_endpoint_as_every_caller(api):
    report = fuzz(api, requests_target=2000, examples=3)  # one full round and a bit
    summary = report.summary()
    print({k: v for k, v in summary.items() if k != "findings"})
    assert report.requests >= 2000, summary
    assert report.operations >= 45 and report.profiles == 12, summary
    assert summary["5xx"] == 0, summary["findings"]
    assert summary["leaks"] == 0, summary["findings"]
    assert summary["transport_errors"] == 0, summary["findings"]
    assert report.healthy_after, summary
