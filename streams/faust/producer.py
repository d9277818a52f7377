"""Faust's producer with librdkafka (confluent-kafka) doing the sending.

Every record the worker writes (derived topics, table changelogs) used to
go through aiokafka, whose pure-Python sender cost about 70 µs per record:
with several records per event it was the largest single cost in the
worker's profile (docs/benchmarks.md). librdkafka batches and sends in
C threads, so a send here costs a few microseconds of Python.

Only sending changes. aiokafka's producer still runs beside it for what
Faust asks of a producer besides sends (topic creation, key partitioning,
header support); both partition keys with murmur2, as Java clients do.

Delivery reports are served on the event loop (``poll(0)`` in a task), so
the futures Faust attaches callbacks to are resolved in the loop's thread.

Records are counted in generations, one per flush: ``flush`` seals the
current generation and returns when every sealed one is acknowledged by
Kafka, so a commit waits for what was produced before it began, never for
what a busy worker keeps producing meanwhile. Output records and changelog
writes need no future each: a generation counts them down in one delivery
callback, notes the first failure (which makes ``flush`` raise, so Faust
never commits past a record Kafka did not take: the worker stops and its
restart replays from the last commit) and the highest changelog offset
per partition (persisted for the next start-up once delivered). One
producer for everything: each produce request to the broker carries all of
it (the broker's CPU is shared with the worker on small machines).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Producer as RdProducer
from faust.exceptions import ProducerSendError
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducer
from faust.transport.drivers.aiokafka import server_list
from faust.types import TP
from faust.types.tuples import RecordMetadata

POLL_IDLE_S = 0.005


class RdKafkaProducer(AIOKafkaProducer):
    _rd: RdProducer | None = None
    _failed: KafkaError | None = None  # sticky: no commit after a lost record
    _poller: asyncio.Task | None = None
    _gen: _Generation
    _sealed: list[_Generation]
    _changelog_tables: dict[tuple[str, int], Any]  # (changelog topic, partition) -> table

    def _rd_config(self) -> dict[str, Any]:
        transport = self.transport
        return {
            "bootstrap.servers": ",".join(server_list(transport.url, transport.default_port)),
            "client.id": f"{self.client_id}-rd",
            # Idempotent: a retried batch is never written twice, and order
            # per partition holds (the table changelogs depend on it).
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": max(1, int(self.linger_ms)),
            "batch.size": int(self.max_batch_size),
            "message.max.bytes": int(self.max_request_size),
            "compression.type": self.compression_type or "none",
            "partitioner": "murmur2_random",  # Java's (and aiokafka's) partitioning
            "queue.buffering.max.messages": 500_000,
            "log_level": 3,
        }

    def __post_init__(self) -> None:
        super().__post_init__()
        self._gen = _Generation()
        self._sealed = []
        self._changelog_tables = {}

    async def on_start(self) -> None:
        await super().on_start()
        self._rd = RdProducer(self._rd_config())
        self._poller = asyncio.ensure_future(self._serve_deliveries())

    async def on_stop(self) -> None:
        if self._rd is not None:
            await self._drain()
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        self._rd = None
        await super().on_stop()

    async def _serve_deliveries(self) -> None:
        # Delivery callbacks run inside poll(), here in the loop's thread.
        while True:
            rd = self._rd
            served = rd.poll(0) if rd is not None else 0
            await asyncio.sleep(0 if served else POLL_IDLE_S)

    def produce(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list | None = None
    ) -> None:
        """Send an output record without a future (see the module docstring)."""
        gen = self._gen
        self._produce(topic, value, key, headers=headers, on_delivery=gen.delivered)
        gen.outstanding += 1

    def _produce(self, topic: str, value: bytes | None, key: bytes | None, **kwargs: Any) -> None:
        rd = self._rd
        if rd is None:
            raise ProducerSendError("producer not started")
        while True:
            try:
                rd.produce(topic, value, key, **kwargs)
                return
            except BufferError:  # librdkafka's queue is full: wait for Kafka to take some
                rd.poll(POLL_IDLE_S)
            except KafkaException as exc:
                raise ProducerSendError(f"Error while sending: {exc!r}") from exc

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[RecordMetadata]:
        if transactional_id:
            raise ProducerSendError("transactions are not used by this worker")
        if isinstance(headers, Mapping):
            headers = list(headers.items())
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        gen = self._gen

        def delivered(err: KafkaError | None, msg: Any) -> None:
            gen.delivered(err, msg)
            if fut.done():
                return
            if err is not None:
                fut.set_exception(ProducerSendError(f"Error while sending: {err}"))
            else:
                tp = TP(msg.topic(), msg.partition())
                fut.set_result(RecordMetadata(tp.topic, tp.partition, tp, msg.offset()))

        kwargs: dict[str, Any] = {"on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp:
            kwargs["timestamp"] = int(timestamp * 1000)
        if headers:
            kwargs["headers"] = headers
        self._produce(topic, value, key, **kwargs)
        gen.outstanding += 1
        return fut

    def produce_changelog(
        self, table: Any, partition: int, key: bytes, value: bytes | None, headers: list
    ) -> None:
        """A table's write (streams/faust/state.py); its offset is persisted once delivered."""
        topic = table.changelog_topic.get_topic_name()
        self._changelog_tables[(topic, partition)] = table
        gen = self._gen
        gen.changelogs = True
        self._produce(
            topic, value, key, partition=partition, headers=headers, on_delivery=gen.delivered
        )
        gen.outstanding += 1

    async def flush(self) -> None:
        await self.buffer.flush()  # Faust's own queue first
        await self._drain()

    async def _drain(self) -> None:
        """Wait until every record produced before now is acknowledged by
        Kafka: not for an empty queue, which a busy worker never has."""
        sealed, self._gen = self._gen, _Generation()
        self._sealed.append(sealed)
        rd = self._rd
        while rd is not None and any(g.outstanding > 0 for g in self._sealed):
            rd.poll(0)
            await asyncio.sleep(0.001)
        done, self._sealed = self._sealed, []
        for gen in done:
            self._failed = self._failed or gen.error
        if self._failed is not None:
            raise ProducerSendError(f"a record was not delivered: {self._failed}")
        for gen in done:
            for tp, offset in gen.changelog_offsets.items():
                table = self._changelog_tables.get(tp)
                if table is not None:
                    table.persist_offset(tp[1], offset)


class _Generation:
    """The records produced between two flushes, tracked without a future each."""

    __slots__ = ("outstanding", "error", "changelogs", "changelog_offsets")

    def __init__(self) -> None:
        self.outstanding = 0
        self.error: KafkaError | None = None
        self.changelogs = False
        self.changelog_offsets: dict[tuple[str, int], int] = {}

    def delivered(self, err: KafkaError | None, msg: Any) -> None:
        self.outstanding -= 1
        if err is not None:
            self.error = self.error or err
        elif self.changelogs:
            tp = (msg.topic(), msg.partition())
            if msg.offset() > self.changelog_offsets.get(tp, -1):
                self.changelog_offsets[tp] = msg.offset()
