"""An asyncio face on confluent-kafka's idempotent producer.

``send_all`` resolves only when Kafka acknowledged every message (acks=all,
enable.idempotence) or reports which ones failed. A background thread polls
the producer so delivery callbacks fire promptly; they hand results back to
the event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Producer
from prometheus_client import Gauge

from core.threads import BackgroundThread

PARTITIONS_TTL_S = 30.0
PRODUCER_QUEUE = Gauge("skillstream_producer_queue_messages", "Messages waiting for Kafka acks")


class ProducerUnavailable(RuntimeError):
    """Kafka could not take the batch now (down, or the local queue is full)."""


@dataclass(frozen=True)
class OutMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    # The record's Kafka timestamp: when the front door received the event,
    # so lag and freshness downstream are measured from receipt.
    timestamp_ms: int = 0
    partition: int = -1  # -1: by the key (the partitioner below)


class AsyncProducer:
    def __init__(self, bootstrap: str, ack_timeout_s: float, queue_max: int = 100_000) -> None:
        self.ack_timeout_s = ack_timeout_s
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                # Java's (and aiokafka's) partitioner, so the worker's own
                # sends keyed by tenant:learner land on the same partition
                # number as the raw events of that learner.
                "partitioner": "murmur2_random",
                "compression.type": "lz4",
                "queue.buffering.max.messages": queue_max,
                # A message not acknowledged within this bound fails, so a
                # request waiting on a down broker ends with 503, not a hang.
                "message.timeout.ms": int(ack_timeout_s * 1000),
                "log_level": 3,
            }
        )
        self._partitions: dict[str, tuple[float, int]] = {}
        self._thread = BackgroundThread("producer-poll", self._poll)
        self._thread.start()

    async def partitions(self, topic: str) -> int:
        """The topic's partition count, read from Kafka at most once per
        PARTITIONS_TTL_S (a count changes only when a topic is recreated)."""
        at, n = self._partitions.get(topic, (0.0, 0))
        if time.monotonic() - at < PARTITIONS_TTL_S:
            return n
        try:
            md = await asyncio.to_thread(self._producer.list_topics, topic, 5)
        except KafkaException as exc:
            raise ProducerUnavailable(f"no metadata for {topic}: {exc}") from exc
        found = md.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise ProducerUnavailable(f"topic {topic} has no partitions")
        self._partitions[topic] = (time.monotonic(), len(found.partitions))
        return len(found.partitions)

    def _poll(self) -> None:
        while not self._thread.stopping.is_set():
            self._producer.poll(0.05)
            PRODUCER_QUEUE.set(len(self._producer))

    async def send_all(self, messages: Sequence[OutMessage]) -> list[KafkaError | None]:
        """Produce every message; return one result per message (None = acked).

        Raises ProducerUnavailable if the local queue is full before all were
        enqueued (nothing unacknowledged is ever reported as accepted).
        """
        batch = _Batch(asyncio.get_running_loop(), len(messages))
        for i, m in enumerate(messages):
            try:
                self._producer.produce(
                    m.topic,
                    m.value,
                    m.key,
                    partition=m.partition,
                    headers=m.headers,
                    timestamp=m.timestamp_ms,
                    on_delivery=partial(batch.delivered, i),
                )
            except (BufferError, KafkaException) as exc:
                # Wait for what was enqueued so its outcome is known, then refuse.
                batch.enqueued_only(i)
                await asyncio.wait([batch.done], timeout=self.ack_timeout_s + 5)
                reason = "producer queue full" if isinstance(exc, BufferError) else str(exc)
                raise ProducerUnavailable(reason) from exc
        await asyncio.wait([batch.done], timeout=self.ack_timeout_s + 5)
        return batch.results()

    def close(self, timeout_s: float = 10.0) -> None:
        self._thread.stop(2)
        self._producer.flush(timeout_s)


class _Batch:
    """The delivery results of one ``send_all``. Callbacks arrive on the
    poll thread; the event loop is woken once, by the last of them, rather
    than once per message."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int) -> None:
        self._loop = loop
        self._results: list[KafkaError | None | object] = [_PENDING] * n
        self._remaining = n
        self._lock = threading.Lock()
        self.done: asyncio.Future[None] = loop.create_future()
        if n == 0:
            self.done.set_result(None)

    def delivered(self, i: int, err: KafkaError | None, _msg: object) -> None:
        self._results[i] = err
        self._count_down(1)

    def enqueued_only(self, n: int) -> None:
        """Only the first ``n`` messages reached the producer."""
        self._count_down(len(self._results) - n)

    def results(self) -> list[KafkaError | None]:
        timed_out = KafkaError(KafkaError._MSG_TIMED_OUT)
        return [timed_out if r is _PENDING else r for r in self._results]  # type: ignore[misc]

    def _count_down(self, k: int) -> None:
        with self._lock:
            self._remaining -= k
            last = self._remaining == 0
        if last:
            self._loop.call_soon_threadsafe(_finish, self.done)


_PENDING = object()


def _finish(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
