"""`skillstream dlq list|replay`: inspect dead letters and re-drive them.

A dead letter keeps the original key, value and headers plus ``dlq.*``
headers (step, error, source topic/partition/offset, time). ``replay``
re-produces the original record to its source topic and, after Kafka
acknowledged it, commits the letter's offset in the consumer group *of its
step* (``skillstream-dlq-replay.<step>``). One group per step is what lets
``replay --step S`` move past other steps' letters without marking them
replayed: a single group's offset would say "everything before here is
done" for every step at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition

from core.kafka_info import while_settling
from streams.pipeline import DLQ_PREFIX

REPLAY_GROUP = "skillstream-dlq-replay"  # prefix: one group per step, "<prefix>.<step>"
NO_STEP = "unknown"  # letters written without a dlq.step header


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


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    md = consumer.list_topics(topic, timeout=10)
    if topic not in md.topics or md.topics[topic].error is not None:
        return []
    return sorted(md.topics[topic].partitions)


@while_settling
def _end(consumer: Consumer, tp: TopicPartition) -> int:
    return consumer.get_watermark_offsets(tp, timeout=10)[1]


def _drain(consumer: Consumer, topic: str, start: dict[int, int] | None = None) -> Iterator:
    """Every record from ``start`` (partition -> offset; default the
    beginning) up to the end each partition had when the drain began."""
    parts = [TopicPartition(topic, p) for p in _partitions(consumer, topic)]
    if not parts:
        return
    ends = {tp.partition: _end(consumer, tp) for tp in parts}
    start = start or {}
    consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in ends])
    done = {p for p, end in ends.items() if end <= start.get(p, 0)}
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
        for msg in _drain(consumer, topic):
            out.append(_letter(msg))
            if limit and len(out) >= limit:
                break
    finally:
        consumer.close()
    return out


class ReplayLedger:
    """Which letters were replayed: per step, the committed offset of the
    step's consumer group on each partition of the dead-letter topic.
    Commits go straight to the group coordinator (no group membership), so
    several steps' groups are advanced from one process."""

    def __init__(self, bootstrap: str, topic: str, partitions: list[int]) -> None:
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self._groups: dict[str, Consumer] = {}
        self._next: dict[str, dict[int, int]] = {}

    @staticmethod
    def group(step: str) -> str:
        return f"{REPLAY_GROUP}.{step or NO_STEP}"

    def _consumer(self, step: str) -> Consumer:
        if step not in self._groups:
            self._groups[step] = _consumer(self.bootstrap, self.group(step))
        return self._groups[step]

    def next_offsets(self, step: str) -> dict[int, int]:
        """partition -> first offset not yet replayed for this step."""
        if step not in self._next:
            tps = [TopicPartition(self.topic, p) for p in self.partitions]
            got = self._consumer(step).committed(tps, timeout=10)
            self._next[step] = {tp.partition: max(tp.offset, 0) for tp in got}
        return self._next[step]

    def replayed(self, step: str, partition: int, offset: int) -> bool:
        return offset < self.next_offsets(step).get(partition, 0)

    def commit(self, step: str, partition: int, offset: int) -> None:
        tp = TopicPartition(self.topic, partition, offset + 1)
        self._consumer(step).commit(offsets=[tp], asynchronous=False)
        self.next_offsets(step)[partition] = offset + 1

    def close(self) -> None:
        for c in self._groups.values():
            c.close()


@dataclass
class ReplayReport:
    replayed: int = 0
    no_source: int = 0  # letters without dlq.source_topic: nowhere to send them


def replay(bootstrap: str, topic: str, step: str | None = None, dry_run: bool = False) -> int:
    """Re-produce not-yet-replayed dead letters to their source topics."""
    return replay_report(bootstrap, topic, step, dry_run).replayed


def replay_report(
    bootstrap: str, topic: str, step: str | None = None, dry_run: bool = False
) -> ReplayReport:
    # the reader never commits: what was replayed lives in the steps' groups
    reader = _consumer(bootstrap, f"skillstream-dlq-read-{uuid.uuid4().hex}")
    ledger = ReplayLedger(bootstrap, topic, _partitions(reader, topic))
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    report = ReplayReport()
    try:
        # with --step, start where that step's group stands; else read it all
        start = ledger.next_offsets(step) if step else None
        for msg in _drain(reader, topic, start):
            letter = _letter(msg)
            letter_step = letter.h("dlq.step")
            if step and letter_step != step:
                continue  # another step's letter: its own group still owns it
            if ledger.replayed(letter_step, letter.partition, letter.offset):
                continue
            source = letter.h("dlq.source_topic")
            if not source:
                report.no_source += 1
                continue
            report.replayed += 1
            if dry_run:
                continue
            producer.produce(source, letter.value, letter.key, headers=letter.original_headers)
            if producer.flush(30) != 0:
                raise RuntimeError("Kafka did not acknowledge the replayed record")
            ledger.commit(letter_step, letter.partition, letter.offset)
    finally:
        reader.close()
        ledger.close()
    return report


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
