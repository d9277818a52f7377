"""Kafka → ClickHouse, exactly once.

Batches per topic-partition; a round is written when any batch is full or
old enough (``SINK_BATCH_SIZE`` / ``SINK_BATCH_MS``), and all batches due
then go together, so a round costs one insert per table, not one per
partition (a chdb insert has a fixed cost of ~7 ms: per-partition inserts
were most of the sink's time at 2,000 events/s, docs/benchmarks.md).

A round (``write``): first its plan (every batch's offset range) goes to
``sink_plans``; then each table's rows, with a deduplication token derived
from those ranges; then the next offsets to ``sink_offsets``; only then the
Kafka commit. On (re)assignment the consumer resumes after the last round
ClickHouse holds; a plan left open by a crash is replayed first with
exactly its ranges, so the repeated inserts carry the same tokens and
ClickHouse drops them. Offsets and plans are stored with the Kafka topic's
id, so a topic that was recreated (or a new cluster) is read from its start
and never sought with another incarnation's offsets. Every table also
converges to one row per key. The store down: retries with exponential
backoff; the round stays, lag grows, nothing is lost.

Consumers read with isolation.level=read_committed, so records of any
aborted producer transaction are never written.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from prometheus_client import Counter, Gauge, Histogram
from tenacity import Retrying, retry_if_exception_type, stop_when_event_set, wait_exponential

from core.kafka_info import TopicsInfo, describe_topics
from core.settings import Settings
from core.threads import BackgroundThread
from sinks.store import Store, StoreError
from sinks.writers import WRITERS, Writer
from streams.pipeline import Item, Outcome, dead_letter_headers

log = logging.getLogger("skillstream.sink")

ROWS = Counter("skillstream_sink_rows_total", "Rows written to ClickHouse", ["table"])
BATCH_SECONDS = Histogram("skillstream_sink_batch_seconds", "Time to write one batch")
STORE_ERRORS = Counter("skillstream_sink_store_errors_total", "Failed ClickHouse writes (retried)")
INGEST_LAG = Gauge("skillstream_ingest_lag_ms", "now − oldest accepted event not yet in ClickHouse")
BAD_RECORDS = Counter(
    "skillstream_sink_bad_records_total",
    "Derived records the sink could not turn into a row: dead-lettered",
    ["table"],
)


@dataclass
class Batch:
    writer: Writer
    topic: str
    partition: int
    messages: list = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    replay_end: int | None = None  # replaying an open plan: up to this offset (exclusive)
    topic_id: str = ""  # Kafka's id of the topic these offsets belong to

    @property
    def range(self) -> str:
        topic = f"{self.topic}@{self.topic_id}" if self.topic_id else self.topic
        return f"{topic}:{self.partition}:{self.start}-{self.end - 1}"

    @property
    def start(self) -> int:
        return self.messages[0].offset()

    @property
    def end(self) -> int:
        return self.messages[-1].offset() + 1

    @property
    def complete(self) -> bool:
        """A replayed batch is complete when it reaches its planned end."""
        return self.replay_end is None or (bool(self.messages) and self.end >= self.replay_end)


Stored = dict[tuple[str, int, str], int]  # (topic, partition, topic id) -> next offset
Plans = dict[tuple[str, int, str], tuple[int, int]]  # ... -> planned (start, end)


@dataclass
class BadRecord:
    """A record some table could not take, or one row of a record of rows
    (``index``: its place, ``row``: it alone, what a replay sends);
    dead-lettered once."""

    msg: object  # the confluent_kafka Message
    reasons: dict[str, str] = field(default_factory=dict)  # table -> why
    index: int | None = None
    row: bytes | None = None

    @property
    def value(self) -> bytes:
        return self.msg.value() if self.row is None else self.row

    @property
    def step(self) -> str:
        return "sink." + "+".join(sorted(self.reasons))

    @property
    def error(self) -> str:
        return "; ".join(f"{t}: {why}" for t, why in sorted(self.reasons.items()))[:1000]


BadRecords = dict[tuple[str, int, int, int | None], BadRecord]  # (topic, partition, offset, index)


class SinkError(RuntimeError):
    """ClickHouse and Kafka disagree in a way the sink must not guess past."""


@dataclass
class Start:
    offset: int
    topic_id: str  # carried by the batches (and so the tokens) of this partition
    replay_end: int | None = None
    note: str = ""


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _note_bad(bad: BadRecords, table: str, exc: Exception, m,  # noqa: ANN001 (a Message)
              index: int | None = None, row: bytes | None = None) -> None:  # fmt: skip
    BAD_RECORDS.labels(table).inc()
    key = (m.topic(), m.partition(), m.offset(), index)
    bad.setdefault(key, BadRecord(m, index=index, row=row)).reasons[table] = _reason(exc)
    log.error("dead-lettering %s:%s@%s[%s] for %s: %s", *key, table, _reason(exc))


def _letter_headers(rec: BadRecord) -> list[tuple[str, bytes]]:
    m, batched = rec.msg, rec.index is not None
    item = Item(m.topic(), m.partition(), m.offset(), m.key(), rec.value, m.headers() or [],
                index=rec.index or 0, batched=batched)  # fmt: skip
    return dead_letter_headers(Outcome(item, False, failed_step=rec.step, error=rec.error))


def _on_delivery(failed: list[BadRecord], rec: BadRecord):
    def report(err, _msg) -> None:
        if err is not None:
            failed.append(rec)

    return report


def resume_point(key: tuple[str, int], kafka: TopicsInfo, stored: Stored, plans: Plans) -> Start:
    """Where a partition's reading resumes: after what ClickHouse holds of
    this very topic (its id, not only its name), replaying an open plan
    first; from the topic's start when ClickHouse holds nothing of it."""
    topic, partition = key
    tid, end = kafka.topic_ids.get(topic, ""), kafka.ends.get(key, 0)
    done = stored.get((topic, partition, tid))
    plan = plans.get((topic, partition, tid))
    if done is not None and done > end:
        raise SinkError(
            f"{topic}[{partition}]: ClickHouse holds records up to offset {done}, but Kafka's "
            f"end of this same topic (id {tid}) is {end}: records were lost in Kafka"
        )
    if plan and plan[1] > (done or 0) and plan[0] >= (done if done is not None else plan[0]):
        return Start(plan[0], tid, replay_end=plan[1])
    if done is not None:
        return Start(done, tid)
    legacy = stored.get((topic, partition, ""))  # written before topic ids were kept
    legacy_plan = plans.get((topic, partition, ""))
    if legacy is not None and legacy <= end:
        if legacy_plan and legacy_plan[1] > legacy and legacy_plan[0] >= legacy:
            return Start(legacy_plan[0], "", replay_end=legacy_plan[1])  # its original tokens
        return Start(legacy, tid)
    others = {t for (tp, p, t) in stored if (tp, p) == key and t != tid}
    note = ""
    if others:
        note = (
            f"offsets stored for another incarnation of this topic ({', '.join(sorted(others))}; "
            f"now {tid}, end {end}): it was recreated, writing it from its start"
        )
    return Start(OFFSET_BEGINNING, tid, note=note)


def round_token(kind: str, batches: list[Batch]) -> str:
    """The same ranges give the same token: what makes a replayed insert a no-op."""
    ranges = ",".join(sorted(b.range for b in batches))
    return f"{kind}:{hashlib.blake2b(ranges.encode(), digest_size=16).hexdigest()}"


class Sink:
    def __init__(
        self, settings: Settings, store: Store, bootstrap: str, group: str | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.bootstrap = bootstrap
        self.group = group or f"{settings.topic_prefix}-sink"
        self.by_topic = {settings.topic(w.topic): w for w in WRITERS}
        self.clean_topic = settings.topic("events.clean")
        self.dead_letter_topic = settings.topic("events.dead_letter")
        self._producer: Producer | None = None  # for dead letters, made on first need
        self._thread = BackgroundThread("sink", self._run_logged)
        self._lock = threading.Lock()
        self.fresh_as_of: dict[str, datetime] = {}
        self._unsunk_oldest: dict[tuple[str, int], int] = {}  # received_at ms per TP
        self._replay: dict[tuple[str, int], int] = {}  # open plan: TP -> end offset
        self._topic_ids: dict[tuple[str, int], str] = {}  # TP -> the id its batches carry
        self._batches: dict[tuple[str, int], Batch] = {}  # being read, not yet written
        self._held: dict[tuple[str, int], list] = {}  # past a replayed plan's end: next round
        self.crash_after_insert = False  # test hook: die between insert and commit
        self.batches_written = 0
        self.rounds_written = 0

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        self._load_freshness()
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30) -> None:
        self._thread.stop(timeout)

    # -- what /health shows ----------------------------------------------------
    def ingest_lag_ms(self) -> int:
        with self._lock:
            oldest = min(self._unsunk_oldest.values(), default=None)
        lag = 0 if oldest is None else max(0, int(time.time() * 1000) - oldest)
        INGEST_LAG.set(lag)
        return lag

    def data_fresh_as_of(self, tenant_id: str | None = None) -> datetime | None:
        with self._lock:
            if tenant_id is not None:
                return self.fresh_as_of.get(tenant_id)
            return max(self.fresh_as_of.values(), default=None)

    def _load_freshness(self) -> None:
        rows = self.store.query(
            "SELECT tenant_id, toUnixTimestamp64Milli(max(received_at)) AS ms"
            " FROM events GROUP BY tenant_id"
        )
        with self._lock:
            for r in rows:
                self.fresh_as_of[r["tenant_id"]] = datetime.fromtimestamp(int(r["ms"]) / 1000, UTC)

    # -- the loop --------------------------------------------------------------
    def _consumer(self) -> Consumer:
        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "session.timeout.ms": 10000,
                "log_level": 3,
            }
        )

        def forget(_: Consumer, partitions: list[TopicPartition]) -> None:
            for tp in partitions:
                key = (tp.topic, tp.partition)
                self._batches.pop(key, None)
                self._held.pop(key, None)
                self._replay.pop(key, None)

        def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            kafka = describe_topics(self.bootstrap, sorted({tp.topic for tp in partitions}))
            stored, plans = self._stored_offsets(), self._open_plans()
            forget(consumer, partitions)  # read again from what ClickHouse holds
            for tp in partitions:
                key = (tp.topic, tp.partition)
                start = resume_point(key, kafka, stored, plans)
                tp.offset = start.offset
                self._topic_ids[key] = start.topic_id
                if start.replay_end is not None:
                    self._replay[key] = start.replay_end
                if start.note:
                    log.warning("%s[%d]: %s", tp.topic, tp.partition, start.note)
            consumer.assign(partitions)

        c.subscribe(list(self.by_topic), on_assign=on_assign, on_revoke=forget)
        return c

    def _stored_offsets(self) -> Stored:
        rows = self.store.query(
            "SELECT topic, partition, topic_id, next_offset FROM sink_offsets FINAL"
        )
        return {
            (r["topic"], int(r["partition"]), r["topic_id"]): int(r["next_offset"]) for r in rows
        }

    def _open_plans(self) -> Plans:
        """Every stored plan's range (start, end) per TP and topic id."""
        rows = self.store.query(
            "SELECT topic, partition, topic_id, start_offset, end_offset FROM sink_plans FINAL"
        )
        return {
            (r["topic"], int(r["partition"]), r["topic_id"]): (
                int(r["start_offset"]),
                int(r["end_offset"]),
            )
            for r in rows
        }

    def _run_logged(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # the thread dies like a crashed process would
            log.error("sink stopped: %s", exc)

    def run(self) -> None:
        consumer = self._consumer()
        batches, held = self._batches, self._held
        try:
            while not self._thread.stopping.is_set():
                for msg in consumer.consume(num_messages=2000, timeout=0.1):
                    if msg.error():
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            log.warning("consume error: %s", msg.error())
                        continue
                    key = (msg.topic(), msg.partition())
                    batch = batches.get(key)
                    if batch is None:
                        batch = batches[key] = Batch(
                            self.by_topic[msg.topic()],
                            msg.topic(),
                            msg.partition(),
                            replay_end=self._replay.get(key),
                            topic_id=self._topic_ids.get(key, ""),
                        )
                    if batch.replay_end is not None and msg.offset() >= batch.replay_end:
                        if batch.messages:
                            held.setdefault(key, []).append(msg)
                            continue
                        # nothing of the planned range is left to read (topic
                        # retention): nothing to replay for this partition
                        batch.replay_end = None
                        self._replay.pop(key, None)
                    batch.messages.append(msg)
                    if msg.topic() == self.clean_topic and key not in self._unsunk_oldest:
                        self._note_unsunk(key, msg)
                due = self._due(batches)
                if due:
                    self.write(due, consumer)
                    for b in due:
                        key = (b.topic, b.partition)
                        self._replay.pop(key, None)
                        del batches[key]
                        if key in held:  # the rest of this partition starts the next round
                            nxt = batches[key] = Batch(
                                b.writer, b.topic, b.partition, topic_id=b.topic_id
                            )
                            nxt.messages = held.pop(key)
        finally:
            consumer.close()

    def _due(self, batches: dict[tuple[str, int], Batch]) -> list[Batch]:
        """The batches to write now: a replayed plan once all of it is read
        (alone, so its ranges and tokens are the original ones), else every
        batch once any is full or old enough."""
        if self._replay:
            replaying = [b for k, b in batches.items() if k in self._replay]
            if len(replaying) == len(self._replay) and all(b.complete for b in replaying):
                return replaying
            return []
        now = time.monotonic()
        max_rows, max_age = self.settings.sink_batch_size, self.settings.sink_batch_ms / 1000
        if any(len(b.messages) >= max_rows or now - b.started >= max_age for b in batches.values()):
            return [b for b in batches.values() if b.messages]
        return []

    def _note_unsunk(self, key: tuple[str, int], msg) -> None:
        try:
            value = orjson.loads(msg.value())
            received = int((value[0] if isinstance(value, list) else value)["received_at"])
        except (ValueError, KeyError, TypeError, IndexError):
            return
        with self._lock:
            self._unsunk_oldest[key] = received

    def write(self, batches: list[Batch], consumer: Consumer) -> None:
        """One round: plan, one insert per table, offsets, then the Kafka commit."""
        replaying = any(b.replay_end is not None for b in batches)
        with BATCH_SECONDS.time():
            if not replaying:  # a replayed round's plan is already stored
                plan = [
                    {"topic": b.topic, "topic_id": b.topic_id, "partition": b.partition,
                     "start_offset": b.start, "end_offset": b.end}
                    for b in batches
                ]  # fmt: skip
                self._with_retries(
                    lambda: self.store.insert("sink_plans", plan, round_token("plan", batches))
                )
            by_table: dict[str, list[Batch]] = {}
            for b in batches:
                for table, _ in b.writer.targets:
                    by_table.setdefault(table, []).append(b)
            written: dict[str, list[dict]] = {}
            bad: BadRecords = {}
            for table, group in by_table.items():
                rows = written[table] = [r for b in group for r in self._rows(b, table, bad)]
                token = round_token(table, group)
                self._with_retries(lambda t=table, r=rows, k=token: self.store.insert(t, r, k))
            if self.crash_after_insert:
                raise SystemExit("sink crash injected after insert")
            # acknowledged by Kafka before the offsets move past them: a crash
            # in between replays the round and letters them again (at least once)
            self._dead_letter(list(bad.values()))
            offsets = [
                {"topic": b.topic, "topic_id": b.topic_id, "partition": b.partition,
                 "next_offset": b.end}
                for b in batches
            ]  # fmt: skip
            self._with_retries(
                lambda: self.store.insert("sink_offsets", offsets, round_token("offsets", batches))
            )
        self._commit(consumer, batches)
        for table, rows in written.items():
            ROWS.labels(table).inc(len(rows))
        self.batches_written += len(batches)
        self.rounds_written += 1
        self._advance_freshness(
            [b for b in batches if b.topic == self.clean_topic], written.get("events", [])
        )

    @staticmethod
    def _commit(consumer: Consumer, batches: list[Batch]) -> None:
        """The group's offsets in Kafka only show lag to tools (`sink_offsets`
        is where the sink resumes), so a commit refused while the group
        rebalances (a broker lost, a member timed out) is not an error."""
        try:
            consumer.commit(
                offsets=[TopicPartition(b.topic, b.partition, b.end) for b in batches],
                asynchronous=False,
            )
        except KafkaException as exc:
            log.warning("Kafka commit skipped (ClickHouse holds the offsets): %s", exc)

    def _rows(self, batch: Batch, table: str, bad: BadRecords) -> list[dict]:
        """The table's rows of a batch; a record that cannot become one is
        noted in ``bad`` (with the table and why) for the dead-letter topic."""
        to_row = dict(batch.writer.targets)[table]
        rows = []
        for m in batch.messages:
            if m.value() is None:
                continue  # a tombstone: the key's state was deleted
            try:
                value = orjson.loads(m.value())
            except ValueError as exc:
                _note_bad(bad, table, exc, m)
                continue
            batched = isinstance(value, list)  # a record of rows (the worker's clean events)
            for i, v in enumerate(value if batched else (value,)):
                try:
                    row = to_row(v)
                except (KeyError, TypeError, AttributeError, ValueError) as exc:
                    _note_bad(bad, table, exc, m, *((i, orjson.dumps(v)) if batched else ()))
                    continue
                if row is not None:
                    rows.append(row)
        return rows

    def _dead_letter(self, bad: list[BadRecord]) -> None:
        """Send each bad record to the dead-letter topic with the step
        (``sink.<table>``) and the reason; retried until Kafka acknowledges
        all of them (the round waits, as for a store outage)."""
        if not bad:
            return
        if self._producer is None:
            self._producer = Producer(
                {"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "acks": "all"}
            )
        pending = bad
        while pending and not self._thread.stopping.is_set():
            failed: list[BadRecord] = []
            for rec in pending:
                self._producer.produce(
                    self.dead_letter_topic,
                    rec.value,
                    rec.msg.key(),
                    headers=_letter_headers(rec),
                    on_delivery=_on_delivery(failed, rec),
                )
            # every delivery report arrives before flush returns 0; only the
            # ones Kafka refused are sent again
            while self._producer.flush(5) and not self._thread.stopping.is_set():
                log.warning("dead letters not yet acknowledged by Kafka (waiting)")
            pending = failed
            if pending:
                log.warning("Kafka refused %d dead letter(s) (retrying)", len(pending))
                self._thread.stopping.wait(1)
        if pending or len(self._producer):
            raise SinkError("stopped before Kafka acknowledged the sink's dead letters")

    def _advance_freshness(self, batches: list[Batch], rows: list[dict]) -> None:
        with self._lock:
            for b in batches:
                self._unsunk_oldest.pop((b.topic, b.partition), None)
            for r in rows:
                t = r["tenant_id"]
                if t not in self.fresh_as_of or r["received_at"] > self.fresh_as_of[t]:
                    self.fresh_as_of[t] = r["received_at"]

    def _with_retries(self, fn) -> None:
        for attempt in Retrying(
            retry=retry_if_exception_type(StoreError),
            wait=wait_exponential(multiplier=0.2, max=30),
            stop=stop_when_event_set(self._thread.stopping),
            reraise=True,
        ):
            with attempt:
                try:
                    fn()
                except StoreError as exc:
                    STORE_ERRORS.inc()
                    log.warning("ClickHouse write failed (retrying): %s", exc)
                    raise
