"""Test helpers that read topics back with a plain confluent-kafka consumer."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

SETTLING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._DESTROY_BROKER,  # a restarted cluster's brokers re-registering
}


def _retriable(exc: BaseException) -> bool:
    # a fresh topic's leader is still being elected, or metadata is stale
    return isinstance(exc, KafkaException) and exc.args[0].code() in SETTLING


@retry(
    retry=retry_if_exception(_retriable),
    wait=wait_exponential(multiplier=0.1, max=2),
    stop=stop_after_delay(30),
    reraise=True,
)
def _high_watermarks(c: Consumer, parts: list[TopicPartition]) -> dict[int, int]:
    return {p.partition: c.get_watermark_offsets(p, timeout=10)[1] for p in parts}


def read_all(
    bootstrap: str,
    topic: str,
    expect: int | None = None,
    timeout: float = 20.0,
    weigh=lambda msg: 1,  # noqa: ANN001
):
    """Every message on ``topic`` from the beginning (waits for ``expect`` if
    given: messages, or what ``weigh`` counts in them)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    md = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
    ends = _high_watermarks(c, parts)
    c.assign(parts)
    out, weight = [], 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is not None and not msg.error():
            out.append(msg)
            weight += weigh(msg)
        positions = {tp.partition: tp.offset for tp in c.position(parts)}
        caught_up = all(positions[p] >= ends[p] or ends[p] == 0 for p in ends)
        if caught_up and (expect is None or weight >= expect):
            break
        if expect is not None and caught_up and weight < expect:
            ends = _high_watermarks(c, parts)
    c.close()
    return out


def read_events(bootstrap: str, topic: str, expect: int | None = None, timeout: float = 20.0):
    """Every event on a raw topic, as ``(record, event)`` pairs: a batch
    record (the front door's) gives one pair per event it holds."""
    from schemas.codec import SingleObjectCodec

    codec = SingleObjectCodec()
    msgs = read_all(bootstrap, topic, expect, timeout, lambda m: len(codec.decode_many(m.value())))
    return [(m, ev) for m in msgs for ev in codec.decode_many(m.value())]


def clean_events(bootstrap: str, topic: str) -> int:
    """Events on a clean topic so far: the worker writes a record's clean
    events as one JSON array (a record of one object before it did)."""
    import orjson

    values = [orjson.loads(m.value()) for m in read_all(bootstrap, topic, timeout=10) if m.value()]
    return sum(len(v) if isinstance(v, list) else 1 for v in values)


def progress(bootstrap: str, topic: str, group: str | None = None) -> tuple[int, int]:
    """(records the group has committed, records in the topic), over all partitions."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group or "progress", "log_level": 0})
    try:
        md = c.list_topics(topic, timeout=10)
        parts = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
        high = sum(_high_watermarks(c, parts).values())
        committed = sum(max(0, tp.offset) for tp in c.committed(parts, timeout=10)) if group else 0
        return committed, high
    finally:
        c.close()
