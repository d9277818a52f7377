"""Faust tables with a write-back cache and a direct changelog path.

A plain ``faust.Table`` read costs two RocksDB lookups and a JSON decode,
and every write is a RocksDB write, a Faust future and a changelog record.
An event updates several keys, and the same learner's keys many times a
second, so ``StateTable`` keeps the same data in the same places, only
cheaper:

* reads: pending writes first, then an LRU of decoded values (misses
  included) keyed by (partition, key) as the store is, then RocksDB. This
  process is the only writer of the partitions it holds; the LRU is cleared
  whenever the assignment changes or a recovery has written the store;
* writes: held per key until the next checkpoint (streams/faust/checkpoint.py),
  which writes each changed key once to RocksDB and once to the changelog
  through librdkafka (``RdKafkaProducer.produce_changelog``), as Kafka
  Streams' record cache does. Deletes at the checkpoint are tombstones.

The nightly dedupe sweep deletes through Faust's own path. Before a
partition's store is opened, its persisted changelog offset and the
changelog's identity are checked against Kafka (streams/faust/state_check.py).

**Restore to the last commit.** Each changelog record names, per input
topic, the last input record merged into it (header ``skillstream-src``:
``topic|partition|offset`` joined by ``;``). After a crash the worker drops
its RocksDB and restores from the changelogs, skipping records any of whose
input was not committed (the group's committed offsets, read when each
rebalance starts a recovery): that input is processed again right after,
and keeping them would restore a state no single moment had (a program-week
counter without the membership behind it counts the learner again: the
kill tests in tests/test_stream.py catch it). A checkpoint flushes only
what acknowledged records wrote and commits all of them, so what is
restored is exactly the state at a commit."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import faust
import orjson
import rocksdict
from faust.types import TP
from faust.types.events import EventT
from faust.utils.json import on_default

from streams.faust.state_check import ChangelogView, check_partition
from streams.records import origin_headers

_MISSING = object()
_DELETED = object()
CACHE_MAX_KEYS = 50_000  # decoded values per table, least recently used dropped first

# Per RocksDB database (one per table and partition: 33 with 3 partitions).
# Faust's defaults are sized for one big table (64 MB memtables, 2 GB block
# cache each); these kept a 1M-event run's worker at 378 MB instead of
# 675 MB (docs/benchmarks.md), and the changelog stays the durable copy.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 * 2**20,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 * 2**20,
}


# Faust's JSON codec is orjson with these options; called directly (once the
# table has checked that both give the same bytes) it skips Faust's serializer
# registry, a few percent of the worker's time per key read or written.
_ORJSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z
_PROBE = ('k"ey/é', {"a": [1, 2.5, None, True], "b": "ü\n"})

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
    """Whether every input record behind a changelog record was committed."""
    for name, value in (headers.items() if isinstance(headers, Mapping) else headers) or ():
        if name == SOURCE_HEADER:
            for source in value.decode().split(";"):
                topic, partition, offset = source.rsplit("|", 2)
                if int(offset) >= committed.get((topic, int(partition)), 0):
                    return False
            return True
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
    """A Faust table whose writes are coalesced per key until the next
    checkpoint (streams/faust/checkpoint.py), with an LRU of decoded values."""

    name: str

    def __init__(
        self,
        *args: Any,
        committed: CommittedInput | None = None,
        changelogs: ChangelogView | None = None,
        raw_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # Keys as plain UTF-8 rather than Faust's JSON: for a changelog that
        # is also an output topic, whose keys its readers know.
        self.raw_keys = raw_keys
        self._cache: OrderedDict[tuple[int, Any], Any] = OrderedDict()
        # (partition, key) -> [value or _DELETED, {source topic: last input offset}, origin]
        self._dirty: dict[tuple[int, Any], list] = {}
        self.committed = committed
        self.changelogs = changelogs
        self._direct: bool | None = None  # orjson gives Faust's bytes (checked on first use)

    # -- reads ----------------------------------------------------------------
    def get(self, key: Any, default: Any = None) -> Any:
        value = self.get_in(_partition(), key)
        return default if value is None else value

    def get_in(self, partition: int, key: Any) -> Any:
        """The value in one partition (None when absent), for reads outside a record."""
        ck = (partition, key)
        pending = self._dirty.get(ck)
        if pending is not None:
            return None if pending[0] is _DELETED else pending[0]
        cache = self._cache
        value = cache.get(ck, _MISSING)
        if value is _MISSING:
            raw = self._db(partition).get(self._key_bytes(key))
            value = None if raw is None else self._decode(raw)
            cache[ck] = value
            if len(cache) > CACHE_MAX_KEYS:
                cache.popitem(last=False)
        else:
            cache.move_to_end(ck)
        return value

    def prefetch(self, partition: int, keys: Iterable[Any]) -> None:
        """Read the keys a batch of events will ask for in one RocksDB
        multi-get (those neither pending nor cached), into the cache."""
        cache, dirty = self._cache, self._dirty
        missing = list(dict.fromkeys(
            k for k in keys if (partition, k) not in dirty and (partition, k) not in cache
        ))  # fmt: skip
        if not missing:
            return
        raws = self._db(partition).get([self._key_bytes(k) for k in missing])
        for key, raw in zip(missing, raws, strict=True):
            cache[(partition, key)] = None if raw is None else self._decode(raw)
        while len(cache) > CACHE_MAX_KEYS:
            cache.popitem(last=False)

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key)
        if value is None:
            return self.__missing__(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None

    def pending_in(self, partition: int, key: Any) -> Any:
        """A value written since the last checkpoint (None if none): the
        checkpoint may complete it before it is flushed."""
        entry = self._dirty.get((partition, key))
        return None if entry is None or entry[0] is _DELETED else entry[0]

    def values_in(self, partition: int, keys: list[str]) -> dict[str, Any]:
        """The values of sorted keys of a raw-keyed table: pending writes,
        then one RocksDB range scan from the first key to the last (a
        learner's days are neighbours), instead of a lookup each."""
        wanted, out = set(keys), {}
        for key in keys:
            entry = self._dirty.get((partition, key))
            if entry is not None:
                out[key] = None if entry[0] is _DELETED else entry[0]
        it = self._db(partition).iter()
        it.seek(keys[0].encode())
        last = keys[-1].encode()
        while it.valid() and it.key() <= last:
            key = it.key().decode()
            if key in wanted and key not in out:
                out[key] = self._decode(it.value())
            it.next()
        return out

    def items_with_prefix(self, partition: int, prefix: str) -> dict[str, Any]:
        """Every live key of one partition starting with ``prefix``, and its
        value: one RocksDB seek, pending writes included."""
        out: dict[str, Any] = {}
        start = prefix.encode() if self.raw_keys else self.data._encode_key(prefix)[:-1]
        it = self._db(partition).iter()
        it.seek(start)
        while it.valid() and it.key().startswith(start):
            raw_key = it.key()
            key = raw_key.decode() if self.raw_keys else self.data._decode_key(raw_key)
            out[key] = self.data._decode_value(it.value())
            it.next()
        for (p, key), (value, *_) in self._dirty.items():
            if p == partition and key.startswith(prefix):
                out[key] = value
        return {k: v for k, v in out.items() if v is not _DELETED and v is not None}

    def items_in(self, partition: int) -> Iterator[tuple[Any, Any]]:
        """Every live key of one partition, pending writes included."""
        pending = {k: v[0] for (p, k), v in self._dirty.items() if p == partition}
        for raw_key, raw_value in self._db(partition).items():
            if raw_key == self.data.offset_key:  # Faust keeps its changelog offset here
                continue
            key = raw_key.decode() if self.raw_keys else self.data._decode_key(raw_key)
            if key in pending:
                continue
            yield key, self.data._decode_value(raw_value)
        for key, value in pending.items():
            if value is not _DELETED:
                yield key, value

    def stored_in(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """The raw keys and values in RocksDB of one partition whose store is
        open (nothing when it is not), pending writes left out."""
        db = self.data._dbs.get(partition)
        return iter(()) if db is None else iter(db.items())

    # -- writes: held until the checkpoint --------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        self._pend(key, value)

    def discard(self, key: Any) -> None:
        """Delete at the next checkpoint (a tombstone in the changelog)."""
        self._pend(key, _DELETED)

    def _pend(self, key: Any, value: Any) -> None:
        msg = _event().message
        ck = (msg.partition, key)
        entry = self._dirty.get(ck)
        if entry is None:
            # the oldest receipt behind the record: what its stage's lag is measured from
            self._dirty[ck] = [value, {msg.topic: msg.offset}, origin_headers()]
            self._cache.pop(ck, None)
        else:
            entry[0] = value
            entry[1][msg.topic] = msg.offset  # in order: the latest is the highest

    def __delitem__(self, key: Any) -> None:
        partition = _partition()
        self._dirty.pop((partition, key), None)
        self._cache.pop((partition, key), None)
        super().__delitem__(key)

    def flush(self) -> int:
        """RocksDB (one write batch per partition) and one changelog record
        per changed key (the checkpoint's step 3)."""
        dirty, self._dirty = self._dirty, {}
        producer = self.app.producer
        encode_key, encode_value = self._key_bytes, self._encode
        batches: dict[int, rocksdict.WriteBatch] = {}
        for (partition, key), (value, sources, origin) in dirty.items():
            kb = encode_key(key)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
            if value is _DELETED:
                vb = None
                batch.delete(kb)
            else:
                vb = encode_value(value)
                batch.put(kb, vb)
                self._cache[(partition, key)] = value
            src = ";".join(f"{t}|{partition}|{o}" for t, o in sources.items()).encode()
            producer.produce_changelog(self, partition, kb, vb, [(SOURCE_HEADER, src), *origin])
        for partition, batch in batches.items():
            self._db(partition).write(batch)
        while len(self._cache) > CACHE_MAX_KEYS:
            self._cache.popitem(last=False)
        return len(dirty)

    def drop_partitions(self, partitions: set[int]) -> None:
        for ck in [ck for ck in self._dirty if ck[0] in partitions]:
            del self._dirty[ck]

    def _key_bytes(self, key: Any) -> bytes:
        if self.raw_keys:
            return key.encode()
        return orjson.dumps(key, option=_ORJSON) if self.direct else self.data._encode_key(key)

    def _encode(self, value: Any) -> bytes:
        if self.direct:
            return orjson.dumps(value, default=on_default, option=_ORJSON)
        return self.data._encode_value(value)

    def _decode(self, raw: bytes) -> Any:
        return orjson.loads(raw) if self.direct else self.data._decode_value(raw)

    @property
    def direct(self) -> bool:
        """Whether orjson gives (and reads) exactly the bytes Faust's codecs do."""
        if self._direct is None:
            key, value = _PROBE
            data = self.data
            vb = orjson.dumps(value, default=on_default, option=_ORJSON)
            self._direct = (
                data._encode_key(key) == orjson.dumps(key, option=_ORJSON)
                and data._encode_value(value) == vb
                and data._decode_value(vb) == orjson.loads(vb)
            )
        return self._direct

    def _db(self, partition: int) -> Any:
        return self.data._db_for_partition(partition)

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
    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        self._cache.clear()
        # What a revoked partition held back was never committed (each commit
        # flushes first): its next owner processes that input again.
        self.drop_partitions({tp.partition for tp in revoked} - {tp.partition for tp in assigned})
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
