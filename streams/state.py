"""Faust tables with a decoded-value cache and a direct changelog path.

A plain ``faust.Table`` read costs two RocksDB lookups and a JSON decode
(``get`` asks ``in`` first), and a write goes through a Faust future, its
producer buffer, and a RocksDB write of the changelog offset for every
record. With ten reads and three writes per event that was most of the
worker's time (docs/benchmarks.md). ``StateTable`` keeps the same data in
the same places, only cheaper:

* reads: a per-process cache of decoded values (misses included), keyed by
  (partition, key) as the store is. This process is the only writer of the
  partitions it holds, so the cache is cleared whenever the assignment
  changes or a recovery has written the store behind it;
* writes: the value goes to the partition's RocksDB and, once encoded, to
  the changelog through librdkafka (``RdKafkaProducer.produce_changelog``).
  Offsets persisted for the next start-up are written once per flush, not
  once per record. Faust's commit flushes first, as before, so no offset is
  committed before the state it produced is in Kafka.

Deletes (the nightly dedupe sweep) and iteration are Faust's own. Before a
partition's store is opened, its persisted changelog offset and the
changelog's identity are checked against Kafka (streams/state_check.py).

**Restore to the last commit.** Each changelog record carries the input
record that wrote it (header ``skillstream-src``: topic, partition,
offset). After a crash the worker drops its RocksDB and restores from the
changelogs, skipping records written by input not yet committed (the
group's committed offsets, read when each rebalance starts a recovery):
those are processed again right after, and keeping them would restore a
state no single moment had. (A learner first counted in a program-week writes two
keys, its membership and the week's counter; a SIGKILL between their
deliveries left the counter without the membership, and the learner's next
event counted again. tests/test_stream.py caught it.) Faust's commit comes
after the flush that delivers every changelog record before it, so what
is restored is exactly the state at the commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust
from faust.types import TP
from faust.types.events import EventT

from streams.state_check import ChangelogView, check_partition

_MISSING = object()
CACHE_MAX_KEYS = 50_000  # per table; cleared when reached (cheap, and bounds memory)

# Per RocksDB database (one per table and partition: 33 with 3 partitions).
# Faust's defaults are sized for one big table (64 MB memtables, 2 GB block
# cache each); these kept a 1M-event run's worker at 378 MB instead of
# 675 MB (docs/benchmarks.md), and the changelog stays the durable copy.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 * 2**20,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 * 2**20,
}


SOURCE_HEADER = "skillstream-src"
Committed = Mapping[tuple[str, int], int]  # input (topic, partition) -> committed offset


def _event() -> EventT:
    event: EventT | None = faust.current_event()
    if event is None:
        raise RuntimeError("table state is only read and written while processing a record")
    return event


def _partition() -> int:
    return _event().message.partition


def _written_before_commit(headers: Any, committed: Committed) -> bool:
    for name, value in (headers.items() if isinstance(headers, Mapping) else headers) or ():
        if name == SOURCE_HEADER:
            topic, partition, offset = value.decode().rsplit("|", 2)
            return int(offset) < committed.get((topic, int(partition)), 0)
    return True  # written outside any input record (a sweep's delete)


class CommittedInput:
    """The worker group's committed input offsets, read once per rebalance
    (every table asks; the first read serves them all)."""

    def __init__(self, read: Callable[[], Committed]) -> None:
        self._read = read
        self.offsets: Committed | None = None
        self._read_at = -1.0

    async def refresh(self) -> None:
        if time.monotonic() - self._read_at > 1.0:
            self.offsets = await asyncio.get_running_loop().run_in_executor(None, self._read)
            self._read_at = time.monotonic()


class StateTable(faust.Table):
    def __init__(
        self,
        *args: Any,
        committed: CommittedInput | None = None,
        changelogs: ChangelogView | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._cache: dict[tuple[int, Any], Any] = {}
        self.committed = committed
        self.changelogs = changelogs

    # -- reads ----------------------------------------------------------------
    def get(self, key: Any, default: Any = None) -> Any:
        ck = (_partition(), key)
        value = self._cache.get(ck, _MISSING)
        if value is _MISSING:
            raw = self.data._get(self.data._encode_key(key))
            value = None if raw is None else self.data._decode_value(raw)
            self._remember(ck, value)
        return default if value is None else value

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key)
        if value is None:
            return self.__missing__(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None

    # -- writes ---------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        msg = _event().message
        kb = self.data._encode_key(key)
        vb = self.data._encode_value(value)
        self.data._set(kb, vb)
        self._remember((msg.partition, key), value)
        src = f"{msg.topic}|{msg.partition}|{msg.offset}".encode()
        self.app.producer.produce_changelog(self, msg.partition, kb, vb, [(SOURCE_HEADER, src)])

    def __delitem__(self, key: Any) -> None:
        self._cache.pop((_partition(), key), None)
        super().__delitem__(key)

    def persist_offset(self, partition: int, offset: int) -> None:
        """Where this process's RocksDB is up to in the changelog (read at start-up)."""
        tp = TP(self.changelog_topic.get_topic_name(), partition)
        self.data.set_persisted_offset(tp, offset)

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        """Recovery: only what input committed before this start wrote."""
        committed = self.committed.offsets if self.committed else None
        if committed is not None:
            batch = [e for e in batch if _written_before_commit(e.message.headers, committed)]
        super().apply_changelog_batch(batch)

    # -- invalidation ---------------------------------------------------------
    def _remember(self, ck: tuple[int, Any], value: Any) -> None:
        if len(self._cache) >= CACHE_MAX_KEYS:
            self._cache.clear()
        self._cache[ck] = value

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        self._cache.clear()
        if self.committed is not None:  # before the recovery this rebalance starts
            await self.committed.refresh()
        if self.changelogs is not None:  # before the store opens what it was given
            await self.changelogs.refresh()
            topic = self.changelog_topic.get_topic_name()
            for tp in newly_assigned:
                if tp.topic == topic:
                    check_partition(self, tp.partition, self.changelogs.current)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_recovery_completed(self, *args: Any, **kwargs: Any) -> None:
        self._cache.clear()
        await super().on_recovery_completed(*args, **kwargs)
