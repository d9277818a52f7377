"""Local state that no longer describes Kafka: every topic of a stack deleted
and created again (what a wiped Kafka looks like to the worker's RocksDB and
to the sink's stored offsets). The worker drops each disagreeing table
partition, restores it from the new changelog and keeps running; the sink
reads the new topics from their start. New telemetry then counts exactly."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient

from core.kafka_info import TopicsInfo
from core.topics import ensure_topics
from sinks.sink import SinkError, Start, resume_point
from streams.faust.state_check import disagreement
from tests.conftest import LiveApi
from tests.test_stream import _setup, post_all, start_worker, stop, wait_for_truth


def _delete_all_topics(bootstrap: str, prefix: str) -> list[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    for fut in admin.delete_topics(names, operation_timeout=30).values():
        fut.result()
    deadline = time.monotonic() + 30
    while set(names) & set(admin.list_topics(timeout=10).topics):
        assert time.monotonic() < deadline, "topics not deleted"
        time.sleep(0.2)
    return names


def test_worker_and_sink_recover_from_recreated_topics(settings, store, kafka_bootstrap, unique):
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    api = LiveApi(settings, store, kafka_bootstrap, sink=True)
    names, tenant_ids, keys, scen, want = _setup(api, unique, learners=8)
    worker = start_worker(settings, kafka_bootstrap)
    try:
        post_all(api, keys, scen.batches)
        assert not wait_for_truth(store.query, tenant_ids.values(), want)
    finally:
        stop(worker)  # a clean stop: local state and persisted offsets are kept
        api.close()
    deleted = _delete_all_topics(kafka_bootstrap, settings.topic_prefix)
    assert any(t.endswith("-changelog") for t in deleted)

    ensure_topics(kafka_bootstrap, settings)
    api = LiveApi(settings, store, kafka_bootstrap, sink=True)
    names2, tenant_ids2, keys2, scen2, want2 = _setup(api, unique[::-1], learners=8)
    worker = start_worker(settings, kafka_bootstrap)
    try:
        post_all(api, keys2, scen2.batches)
        problems = wait_for_truth(store.query, tenant_ids2.values(), want2)
        assert not problems, "\n".join(problems[:20])
        assert worker.poll() is None, "the worker exited"
        # what was written before the topics went away is still there, once
        assert not wait_for_truth(store.query, tenant_ids.values(), want, timeout=5)
    finally:
        stop(worker)
        api.close()
    log = (settings.run_dir / "worker.log").read_text()
    assert "ConsistencyError" not in log
    assert "local state dropped (offset-past-end" in log or "(changelog-recreated" in log


def test_disagreements_between_local_state_and_kafka():
    kafka = TopicsInfo("cluster-a", {"t-changelog": "id-2"}, {("t-changelog", 0): 10})
    same = {"cluster_id": "cluster-a", "topic_id": "id-2"}
    assert disagreement(9, same, "t-changelog", 0, kafka) is None
    assert disagreement(None, None, "t-changelog", 0, kafka) is None  # nothing persisted yet
    assert disagreement(10, same, "t-changelog", 0, kafka) == "offset-past-end"
    assert disagreement(3, None, "t-changelog", 1, kafka) == "offset-past-end"  # empty partition
    old = {"cluster_id": "cluster-a", "topic_id": "id-1"}
    assert disagreement(3, old, "t-changelog", 0, kafka) == "changelog-recreated"
    other = {"cluster_id": "cluster-b", "topic_id": "id-2"}
    assert disagreement(3, other, "t-changelog", 0, kafka) == "other-cluster"
    gone = TopicsInfo("cluster-a", {}, {})
    assert disagreement(3, same, "t-changelog", 0, gone) == "changelog-recreated"


def test_sink_resumes_only_with_offsets_of_the_same_topic():
    key = ("out", 0)
    kafka = TopicsInfo("c", {"out": "new"}, {key: 40})
    # offsets of this topic id: resume there; an open plan of it: replay it first
    assert resume_point(key, kafka, {("out", 0, "new"): 30}, {}) == Start(30, "new")
    plan = {("out", 0, "new"): (30, 35)}
    assert resume_point(key, kafka, {("out", 0, "new"): 30}, plan) == Start(30, "new", 35)
    # only another incarnation's offsets: from the start, said once in the log
    start = resume_point(key, kafka, {("out", 0, "old"): 90}, {})
    assert (start.offset, start.topic_id) == (OFFSET_BEGINNING, "new") and "recreated" in start.note
    # nothing stored (a new store on an old topic): from the start, not the group's offset
    assert resume_point(key, kafka, {}, {}) == Start(OFFSET_BEGINNING, "new")
    # rows from before topic ids were kept: used while they fit in the topic
    assert resume_point(key, kafka, {("out", 0, ""): 20}, {}) == Start(20, "new")
    assert resume_point(key, kafka, {("out", 0, ""): 50}, {}).offset == OFFSET_BEGINNING
    # a legacy open plan is replayed with its legacy tokens
    legacy = resume_point(key, kafka, {("out", 0, ""): 20}, {("out", 0, ""): (20, 25)})
    assert legacy == Start(20, "", 25)
    # the same topic holding fewer records than ClickHouse wrote: stop, say why
    with pytest.raises(SinkError, match="records were lost in Kafka"):
        resume_point(key, kafka, {("out", 0, "new"): 41}, {})
