"""One checkpoint per commit: coalesced state and outputs, then the offsets.

Table writes and aggregate outputs are merged per key in memory while the
agents work (Kafka Streams' record cache, Quix Streams' checkpoint); once
per commit interval the checkpoint

1. closes the gate: agents finish the record in hand and wait;
2. takes the offsets Faust will commit (every record acknowledged so far);
3. flushes every participant (tables: RocksDB + one changelog record per
   changed key; outputs: one row per changed key, scores recomputed once
   per learner) into the producer;
4. opens the gate again, and Faust flushes the producer (waiting only for
   what was produced before) and commits the offsets of step 2.

Every changelog record carries the highest input offset per source topic
behind it (streams/faust/state.py); all of them are below the offsets of step 2,
so a crash before the commit skips the whole flush at restore, and a commit
after it keeps it whole: state is restored to exactly a commit. The gate is
what makes that true: no record is half applied, and none applied but not
committed, when step 2 and 3 run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from prometheus_client import Counter, Histogram

CHECKPOINT_SECONDS = Histogram(
    "skillstream_worker_checkpoint_seconds",
    "Agents paused while a checkpoint flushes coalesced state and outputs",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
RECORDS_OUT = Counter(
    "skillstream_worker_records_out_total",
    "Records the worker wrote, per topic (outputs and table changelogs)",
    ["topic"],
)
KEYS_FLUSHED = Counter(
    "skillstream_worker_checkpoint_keys_total",
    "Keys written by checkpoints (each stands for every update merged into it)",
    ["part"],
)


class Participant(Protocol):
    name: str

    def flush(self) -> int:
        """Hand everything pending to the producer; return the keys written."""
        ...

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget what is pending for partitions this worker no longer has."""
        ...


class Checkpoint:
    def __init__(self) -> None:
        self.participants: list[Participant] = []
        self.keys_flushed = 0  # by every checkpoint of this process so far
        # Awaited once per commit, when the checkpoint's records are in Kafka
        # and its offsets are not yet committed; none in production. A caller
        # that must act between the two (a test's injected fault) adds one
        # here rather than patching Faust's commit.
        self.before_commit: list[Callable[[], Awaitable[None]]] = []
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0

    def add(self, participant: Participant) -> None:
        self.participants.append(participant)

    # -- the agents' side: one record at a time, between checkpoints ----------
    async def enter(self) -> None:
        while not self._open.is_set():
            await self._open.wait()
        self._busy += 1
        self._idle.clear()

    def leave(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self._idle.set()

    # -- the commit's side ------------------------------------------------------
    async def run(self, take_offsets: Callable[[], dict]) -> dict:
        """Steps 1-4 of the module docstring; returns the offsets to commit."""
        self._open.clear()
        try:
            await self._idle.wait()
            started = time.perf_counter()
            offsets = take_offsets()
            for p in self.participants:
                n = p.flush()
                self.keys_flushed += n
                KEYS_FLUSHED.labels(p.name).inc(n)
            CHECKPOINT_SECONDS.observe(time.perf_counter() - started)
            return offsets
        finally:
            self._open.set()

    def drop_partitions(self, partitions: set[int]) -> None:
        for p in self.participants:
            p.drop_partitions(partitions)
