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
the futures Faust attaches callbacks to (a changelog's persisted offset,
an ack) are resolved in the loop's thread. ``flush`` returns only when
librdkafka holds nothing undelivered, which is what Faust's commit relies
on: offsets are committed after every record sent before them is
acknowledged by Kafka.

The worker's own output records (clean events, aggregate rows, scores) need
no future each: ``produce`` hands them to librdkafka with the producer-wide
delivery callback, which only notes a failure. A failure makes the next
``flush`` raise, so Faust never commits past a record Kafka did not take;
the worker stops and its restart replays from the last commit. One
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
    _out_error: KafkaError | None = None
    _poller: asyncio.Task | None = None
    _changelogs: dict[tuple[int, int], _ChangelogPartition]  # (id(table), partition)

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
            # for records produced without a callback of their own (outputs)
            "on_delivery": self._on_output_failed,
        }

    def __post_init__(self) -> None:
        super().__post_init__()
        self._changelogs = {}

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

    def _on_output_failed(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None and self._out_error is None:
            self._out_error = err

    def produce(
        self, topic: str, key: bytes | None, value: bytes, headers: list | None = None
    ) -> None:
        """Send an output record without a future (see the module docstring)."""
        self._produce(topic, value, key, headers=headers)

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

        def delivered(err: KafkaError | None, msg: Any) -> None:
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
        return fut

    def produce_changelog(
        self, table: Any, partition: int, key: bytes, value: bytes, headers: list
    ) -> None:
        """A table write (streams/state.py): its offset is persisted at the next flush."""
        target = self._changelogs.get((id(table), partition))
        if target is None:
            target = _ChangelogPartition(table, partition)
            self._changelogs[(id(table), partition)] = target
        self._produce(
            target.topic, value, key, partition=partition, headers=headers,
            on_delivery=target.delivered,
        )  # fmt: skip

    async def flush(self) -> None:
        await self.buffer.flush()  # Faust's own queue first (changelog writes)
        await self._drain()

    async def _drain(self) -> None:
        # Until every record handed to librdkafka is acknowledged; polling
        # here resolves their futures in the loop's thread as we go.
        rd = self._rd
        while rd is not None and len(rd) > 0:
            rd.poll(0)
            if len(rd) > 0:
                await asyncio.sleep(0.001)
        failed = self._out_error or next(
            (c.error for c in self._changelogs.values() if c.error), None
        )
        if failed is not None:
            raise ProducerSendError(f"a record was not delivered: {failed}")
        for changelog in self._changelogs.values():
            changelog.persist()


class _ChangelogPartition:
    """Delivery of one table's changelog partition, tracked without a future per record."""

    def __init__(self, table: Any, partition: int) -> None:
        self.table = table
        self.partition = partition
        self.topic = table.changelog_topic.get_topic_name()
        self.delivered_up_to = -1
        self.persisted = -1
        self.error: KafkaError | None = None

    def delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self.error = self.error or err
        elif msg.offset() > self.delivered_up_to:
            self.delivered_up_to = msg.offset()

    def persist(self) -> None:
        if self.delivered_up_to > self.persisted:
            self.table.persist_offset(self.partition, self.delivered_up_to)
            self.persisted = self.delivered_up_to
