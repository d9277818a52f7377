"""`skillstream dlq list|replay`: inspect dead letters and re-drive them.

A dead letter keeps the original key, value and headers plus ``dlq.*``
headers (step, error, source topic/partition/offset, time). ``replay``
re-produces the original record to its source topic through a consumer
group, committing after each flush, so one dead letter is replayed once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.pipeline import DLQ_PREFIX

REPLAY_GROUP = "skillstream-dlq-replay"


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    def h(self, name: str) -> str:
        return self.headers.get(name, b"").decode(errors="replace")

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers.items() if not k.startswith(DLQ_PREFIX)]


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )


def _drain(consumer: Consumer, topic: str, assign_from_start: bool) -> Iterator:
    md = consumer.list_topics(topic, timeout=10)
    if topic not in md.topics or md.topics[topic].error is not None:
        return
    parts = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
    if assign_from_start:
        consumer.assign([TopicPartition(topic, tp.partition, 0) for tp in parts])
    else:
        committed = consumer.committed(parts, timeout=10)
        consumer.assign(
            [TopicPartition(topic, tp.partition, max(tp.offset, 0)) for tp in committed]
        )
    done = {p for p, end in ends.items() if end == 0}
    idle_since = time.monotonic()
    while len(done) < len(ends) and time.monotonic() - idle_since < 10:
        msg = consumer.poll(0.5)
        if msg is None:
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            done |= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
            continue
        if msg.error():
            continue
        idle_since = time.monotonic()
        yield msg
        if msg.offset() + 1 >= ends[msg.partition()]:
            done.add(msg.partition())


def _letter(msg) -> DeadLetter:
    return DeadLetter(
        msg.partition(), msg.offset(), msg.key(), msg.value(), dict(msg.headers() or [])
    )


def list_dead_letters(bootstrap: str, topic: str, limit: int | None = None) -> list[DeadLetter]:
    consumer = _consumer(bootstrap, f"skillstream-dlq-list-{uuid.uuid4().hex}")
    out = []
    try:
        for msg in _drain(consumer, topic, assign_from_start=True):
            out.append(_letter(msg))
            if limit and len(out) >= limit:
                break
    finally:
        consumer.close()
    return out


def replay(bootstrap: str, topic: str, step: str | None = None, dry_run: bool = False) -> int:
    """Re-produce not-yet-replayed dead letters to their source topics."""
    consumer = _consumer(bootstrap, REPLAY_GROUP)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    count = 0
    try:
        for msg in _drain(consumer, topic, assign_from_start=False):
            letter = _letter(msg)
            if step and letter.h("dlq.step") != step:
                continue
            source = letter.h("dlq.source_topic")
            if not source:
                continue
            count += 1
            if dry_run:
                continue
            producer.produce(source, letter.value, letter.key, headers=letter.original_headers)
            if producer.flush(30) != 0:
                raise RuntimeError("Kafka did not acknowledge the replayed record")
            consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()
    return count


def format_table(letters: list[DeadLetter]) -> str:
    rows = [("PARTITION:OFFSET", "STEP", "EVENT", "TENANT", "FAILED_AT", "ERROR")]
    for d in letters:
        rows.append(
            (
                f"{d.partition}:{d.offset}",
                d.h("dlq.step"),
                d.h("event_name") or "-",
                d.h("tenant_id") or "-",
                d.h("dlq.failed_at")[:19],
                d.h("dlq.error")[:80],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1]
        for r in rows
    )
