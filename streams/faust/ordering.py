"""In-order delivery per partition, which the idempotent state relies on.

faust-streaming 0.15 can drop fetched records while its flow is suspended
(recovery, rebalance) and go on with later offsets; the dropped ones come
back only after a restart. State updates here are idempotent per source
offset only when each partition is applied in order, and a commit must
never pass a record that was not applied. So every agent reads through
this guard, with manual acks:

* the offset expected next: apply it, then acknowledge it;
* a later offset (records were skipped): rewind the consumer to the
  expected offset and drop the event unacknowledged (it comes again);
* an earlier offset (re-read after a rewind or rebalance): applied already
  in this process, so only acknowledged.

The first expected offset of a partition is the group's committed offset
(or the partition's first offset), read from Kafka itself when the
partition is (re)assigned: a partition this worker lost may have been
processed and committed past by another worker meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition
from faust.types import TP, AppT, EventT, StreamT
from prometheus_client import Counter

from core.kafka_info import while_settling
from streams.faust.checkpoint import Checkpoint

log = logging.getLogger("skillstream.worker")

REWINDS = Counter(
    "skillstream_stream_rewinds_total", "Times a partition was rewound after skipped records"
)
REWIND_RETRY_S = 2.0
STALL_S = 30.0


class InOrder:
    def __init__(self, app: AppT, bootstrap: str, checkpoint: Checkpoint | None = None) -> None:
        self.app = app
        self.checkpoint = checkpoint
        self._lookup = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": app.conf.id, "log_level": 0}
        )
        self._next: dict[tuple[str, int], int] = {}
        self._rewinding: dict[tuple[str, int], asyncio.Future] = {}
        self._caught_up: dict[tuple[str, int], bool] = {}
        self._skipped_at: dict[tuple[str, int], float] = {}
        self._progress_at = time.monotonic()

    async def consume(self, stream: StreamT, apply: Callable[[EventT], Awaitable[None]]) -> None:
        """An agent's loop: each record of each partition applied once, in
        order, and acknowledged only after ``apply`` returned."""
        stream = stream.noack()
        checkpoint = self.checkpoint
        async for event in stream.events():
            # No checkpoint between a record's first write and its ack
            # (streams/faust/checkpoint.py).
            if checkpoint is not None:
                await checkpoint.enter()
            try:
                if await self.admit(stream, event):
                    await apply(event)
                    await self.applied(stream, event)
            finally:
                if checkpoint is not None:
                    checkpoint.leave()

    def forget(self, lost: set[TP]) -> None:
        """Partitions now owned elsewhere: if one comes back, it resumes
        where the group committed, not where this worker stopped."""
        for tp in lost:
            key = (tp.topic, tp.partition)
            self._next.pop(key, None)
            self._caught_up.pop(key, None)
            self._skipped_at.pop(key, None)
            rewinding = self._rewinding.pop(key, None)
            if rewinding is not None:
                rewinding.cancel()

    async def admit(self, stream: StreamT, event: EventT) -> bool:
        """True when the event is the next one of its partition."""
        msg = event.message
        key = (msg.topic, msg.partition)
        expected = self._next.get(key)
        if expected is None:
            expected = self._next[key] = await self._start_offset(msg.topic, msg.partition)
        if msg.offset == expected:
            if key in self._rewinding:
                self._caught_up[key] = True
            return True
        if msg.offset < expected:
            await stream.ack(event)
            return False
        self._skipped_at[key] = time.monotonic()
        if key not in self._rewinding:
            REWINDS.inc()
            log.warning("%s[%d]: got offset %d, expected %d: rewinding", *key, msg.offset, expected)
            self._rewinding[key] = asyncio.ensure_future(self._rewind(key))
        return False

    async def _rewind(self, key: tuple[str, int]) -> None:
        # Records fetched before the seek may still arrive and move faust's
        # read position past the rewound one (it then drops the re-read
        # records), so seek again until the expected offset has come.
        tp = TP(*key)
        try:
            while True:
                started = time.monotonic()
                self._caught_up.pop(key, None)
                # In the consumer's own thread: aiokafka's fetcher is not
                # thread-safe, and a seek from this loop raced its fetch
                # (KeyError in fetched_records, the worker crashed).
                await self._seek(tp, self._next[key])
                await asyncio.sleep(REWIND_RETRY_S)
                if self._caught_up.get(key) and self._skipped_at[key] < started:
                    return
        finally:
            self._rewinding.pop(key, None)

    async def _seek(self, tp: TP, offset: int) -> None:
        consumer = self.app.consumer
        thread = consumer._thread  # faust's aiokafka consumer thread
        await thread.call_thread(thread._ensure_consumer().seek, tp, offset)
        consumer._read_offset[tp] = offset if offset else None  # as Consumer.seek does

    async def applied(self, stream: StreamT, event: EventT) -> None:
        msg = event.message
        key = (msg.topic, msg.partition)
        self._next[key] = msg.offset + 1
        self._progress_at = time.monotonic()
        await stream.ack(event)

    async def watch(self, topics: set[str]) -> None:
        """Rewind a partition that has records while the worker has applied
        nothing for STALL_S: faust may have dropped every record fetched
        after a point, so no later one ever arrives to show the skip (run on
        a timer). A busy worker is left alone: under a backlog faust serves
        topics and partitions unevenly, and that is not a stall."""
        now = time.monotonic()
        if now - self._progress_at < STALL_S:
            return
        for tp in self.app.consumer.assignment():
            key = (tp.topic, tp.partition)
            if tp.topic not in topics or key in self._rewinding:
                continue
            try:
                if key not in self._next:
                    self._next[key] = await self._start_offset(*key)
                high = await asyncio.get_running_loop().run_in_executor(None, self._high, *key)
            except KafkaException as exc:  # a broker down for over a minute: next tick
                log.warning("%s[%d]: cannot read its end offset: %s", *key, exc)
                continue
            if high > self._next[key]:
                REWINDS.inc()
                log.warning("%s[%d]: stalled before offset %d: rewinding", *key, self._next[key])
                self._skipped_at[key] = now
                self._rewinding[key] = asyncio.ensure_future(self._rewind(key))

    @while_settling
    def _high(self, topic: str, partition: int) -> int:
        _, high = self._lookup.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        return high

    async def _start_offset(self, topic: str, partition: int) -> int:
        return await asyncio.get_running_loop().run_in_executor(
            None, self._committed_or_first, topic, partition
        )

    @while_settling
    def _committed_or_first(self, topic: str, partition: int) -> int:
        (tp,) = self._lookup.committed([TopicPartition(topic, partition)], timeout=30)
        if tp.offset >= 0:
            return tp.offset
        low, _ = self._lookup.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        return low
