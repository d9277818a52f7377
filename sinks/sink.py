"""Kafka → ClickHouse, exactly once.

Batches per topic-partition (size or age, whichever first); ``write(batch)``
inserts with a deduplication token derived from topic, partition and offset
range, records the next offset in ``sink_offsets``, and only then commits
the Kafka offset. On (re)assignment the consumer resumes after the last
batch ClickHouse holds, so a crash between insert and commit replays
nothing; the token covers a crash inside the insert, and every table
converges to one row per key besides. The store down: retries with
exponential backoff; the batch stays, lag grows, nothing is lost.

Consumers read with isolation.level=read_committed, so records of any
aborted producer transaction are never written.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, TopicPartition
from prometheus_client import Counter, Gauge, Histogram
from tenacity import Retrying, retry_if_exception_type, stop_when_event_set, wait_exponential

from ops.settings import Settings
from sinks.store import Store, StoreError
from sinks.writers import WRITERS, Writer

log = logging.getLogger("skillstream.sink")

ROWS = Counter("skillstream_sink_rows_total", "Rows written to ClickHouse", ["table"])
BATCH_SECONDS = Histogram("skillstream_sink_batch_seconds", "Time to write one batch")
STORE_ERRORS = Counter("skillstream_sink_store_errors_total", "Failed ClickHouse writes (retried)")
INGEST_LAG = Gauge("skillstream_ingest_lag_ms", "now − oldest accepted event not yet in ClickHouse")
BAD_RECORDS = Counter("skillstream_sink_bad_records_total", "Undecodable derived records skipped")


@dataclass
class Batch:
    writer: Writer
    topic: str
    partition: int
    messages: list = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def token(self) -> str:
        first, last = self.messages[0].offset(), self.messages[-1].offset()
        return f"{self.topic}:{self.partition}:{first}-{last}"


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.fresh_as_of: dict[str, datetime] = {}
        self._unsunk_oldest: dict[tuple[str, int], int] = {}  # received_at ms per TP
        self.crash_after_insert = False  # test hook: die between insert and commit
        self.batches_written = 0

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        self._load_freshness()
        self._thread = threading.Thread(target=self._run_logged, name="sink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

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

        def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            stored = self._stored_offsets()
            for tp in partitions:
                nxt = stored.get((tp.topic, tp.partition))
                if nxt is not None:
                    tp.offset = nxt
            consumer.assign(partitions)

        c.subscribe(list(self.by_topic), on_assign=on_assign)
        return c

    def _stored_offsets(self) -> dict[tuple[str, int], int]:
        rows = self.store.query("SELECT topic, partition, next_offset FROM sink_offsets FINAL")
        return {(r["topic"], int(r["partition"])): int(r["next_offset"]) for r in rows}

    def _run_logged(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # the thread dies like a crashed process would
            log.error("sink stopped: %s", exc)

    def run(self) -> None:
        consumer = self._consumer()
        batches: dict[tuple[str, int], Batch] = {}
        max_rows, max_age = self.settings.sink_batch_size, self.settings.sink_batch_ms / 1000
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(num_messages=2000, timeout=0.1):
                    if msg.error():
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            log.warning("consume error: %s", msg.error())
                        continue
                    key = (msg.topic(), msg.partition())
                    batch = batches.get(key)
                    if batch is None:
                        batch = batches[key] = Batch(
                            self.by_topic[msg.topic()], msg.topic(), msg.partition()
                        )
                    batch.messages.append(msg)
                    if msg.topic() == self.clean_topic and key not in self._unsunk_oldest:
                        self._note_unsunk(key, msg)
                now = time.monotonic()
                for key in list(batches):
                    b = batches[key]
                    if len(b.messages) >= max_rows or now - b.started >= max_age:
                        self.write(b, consumer)
                        del batches[key]
        finally:
            consumer.close()

    def _note_unsunk(self, key: tuple[str, int], msg) -> None:
        try:
            received = int(json.loads(msg.value())["received_at"])
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self._unsunk_oldest[key] = received

    def write(self, batch: Batch, consumer: Consumer) -> None:
        """Insert one batch, record its offset, then commit it to Kafka."""
        rows = []
        for m in batch.messages:
            try:
                rows.append(batch.writer.to_row(json.loads(m.value())))
            except (ValueError, KeyError, TypeError) as exc:
                BAD_RECORDS.inc()
                log.error(
                    "skipping bad record %s:%s@%s: %s", m.topic(), m.partition(), m.offset(), exc
                )
        next_offset = batch.messages[-1].offset() + 1
        with BATCH_SECONDS.time():
            self._with_retries(lambda: self.store.insert(batch.writer.table, rows, batch.token))
            if self.crash_after_insert:
                raise SystemExit("sink crash injected after insert")
            self._with_retries(
                lambda: self.store.insert(
                    "sink_offsets",
                    [
                        {
                            "topic": batch.topic,
                            "partition": batch.partition,
                            "next_offset": next_offset,
                        }
                    ],
                    f"offsets:{batch.token}",
                )
            )
        consumer.commit(
            offsets=[TopicPartition(batch.topic, batch.partition, next_offset)], asynchronous=False
        )
        ROWS.labels(batch.writer.table).inc(len(rows))
        self.batches_written += 1
        if batch.topic == self.clean_topic:
            self._advance_freshness(batch, rows)

    def _advance_freshness(self, batch: Batch, rows: list[dict]) -> None:
        with self._lock:
            self._unsunk_oldest.pop((batch.topic, batch.partition), None)
            for r in rows:
                t = r["tenant_id"]
                if t not in self.fresh_as_of or r["received_at"] > self.fresh_as_of[t]:
                    self.fresh_as_of[t] = r["received_at"]

    def _with_retries(self, fn) -> None:
        for attempt in Retrying(
            retry=retry_if_exception_type(StoreError),
            wait=wait_exponential(multiplier=0.2, max=30),
            stop=stop_when_event_set(self._stop),
            reraise=True,
        ):
            with attempt:
                try:
                    fn()
                except StoreError as exc:
                    STORE_ERRORS.inc()
                    log.warning("ClickHouse write failed (retrying): %s", exc)
                    raise
