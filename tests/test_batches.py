"""Raw records are batches (issue 34): the worker reads both the batch
records the front door writes now and the one-event records it wrote
before, in one partition, and counts every event once; a worker killed in
the middle of a batch, after part of its outputs reached Kafka and before
its commit, counts every event once after its restart."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer

from api.ingest.recent import RecentIds
from api.ingest.validate import Bounds, validate_event
from core.keys import learner_key_bytes
from schemas.codec import SingleObjectCodec
from tests.support import scenario
from tests.support.kafka import clean_events, progress, read_all
from tests.test_stream import _setup, post_all, start_worker, stop, wait_for_truth

pytestmark = pytest.mark.stack


def produce_one_event_records(api, settings, tenant_ids: dict[str, str], batches) -> int:
    """What the front door wrote before batches: one record per event, keyed
    tenant:learner, partitioned by that key."""
    codec, bounds = SingleObjectCodec(), Bounds(300, settings.ingest_max_age_s)
    p = Producer({"bootstrap.servers": api.ctx.kafka_bootstrap, "partitioner": "murmur2_random",
                  "enable.idempotence": True})  # fmt: skip
    received, n = datetime.now(UTC), 0
    for batch in batches:
        for ev in batch:
            tid = tenant_ids[scenario.learner_of(ev).rsplit("-u", 1)[0]]
            salt = api.ctx.tenants.by_id(tid).pii_salt
            rec, errors = validate_event(ev, tenant_id=tid, pii_salt=salt,
                                         received_at=received, bounds=bounds)  # fmt: skip
            assert not errors, errors
            key = learner_key_bytes(tid, rec["user_id"] or rec["anonymous_id"])
            p.produce(api.ctx.raw_topic, codec.encode(rec), key)
            n += 1
    assert p.flush(30) == 0
    return n


def test_one_event_records_then_batches_in_one_partition_count_once(
    live_api_with_sink, settings, kafka_bootstrap, unique
):
    api = live_api_with_sink
    names, tenant_ids, keys, scen, want = _setup(api, unique, learners=60)
    half = len(scen.batches) // 2
    produce_one_event_records(api, settings, tenant_ids, scen.batches[:half])
    worker = start_worker(settings, kafka_bootstrap)
    try:
        raw, group = settings.topic("events.raw"), f"{settings.topic_prefix}-worker"
        _wait_committed(kafka_bootstrap, raw, group)
        stop(worker)  # the upgrade: the worker restarts between the two formats
        post_all(api, keys, scen.batches[half:])
        codec = SingleObjectCodec()
        records = read_all(kafka_bootstrap, raw)
        formats = {(m.partition(), codec.is_batch(m.value())) for m in records}
        partitions = settings.topic_partitions
        assert formats == {(p, b) for p in range(partitions) for b in (False, True)}, formats
        worker = start_worker(settings, kafka_bootstrap)
        api.ctx.recent = RecentIds()
        post_all(api, keys, scen.replay)  # replays of both formats' events, as batches
        problems = wait_for_truth(api.ctx.store.query, tenant_ids.values(), want, timeout=180)
        assert not problems, "\n".join(problems[:20])
    finally:
        stop(worker)


def test_sigkill_in_the_middle_of_a_batch_counts_once(
    live_api_with_sink, settings, kafka_bootstrap, unique
):
    api = live_api_with_sink
    names, tenant_ids, keys, scen, want = _setup(api, unique, learners=120)
    post_all(api, keys, scen.batches)
    clean = settings.topic("events.clean")
    worker = start_worker(settings, kafka_bootstrap, module="tests.support.killing_worker",
                          SKILLSTREAM_KILL_MID_BATCH="400")  # fmt: skip
    try:
        assert worker.wait(120) == -signal.SIGKILL, "the fault was not injected"
        committed, total = progress(
            kafka_bootstrap, settings.topic("events.raw"), f"{settings.topic_prefix}-worker"
        )
        assert committed < total, "the worker had committed everything before the fault"
        assert clean_events(kafka_bootstrap, clean) >= 200, "its outputs were not in Kafka"
        worker = start_worker(settings, kafka_bootstrap)
        api.ctx.recent = RecentIds()
        post_all(api, keys, scen.replay)
        problems = wait_for_truth(api.ctx.store.query, tenant_ids.values(), want, timeout=180)
        assert not problems, "\n".join(problems[:20])
    finally:
        stop(worker)


def _wait_committed(bootstrap: str, topic: str, group: str, timeout: float = 90) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        committed, total = progress(bootstrap, topic, group)
        if total and committed >= total:
            return
        time.sleep(0.5)
    raise AssertionError(f"{group} never committed all of {topic}")
