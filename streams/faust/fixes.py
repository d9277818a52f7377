"""Fixes to faust-streaming 0.15.3 that at-least-once delivery depends on.

Every patch of Faust's classes lives here (the package docstring lists
them with the rest of the adaptation), written against exactly the version
pinned in pyproject.toml; ``apply`` refuses any other version.

Faust commits offsets after ``producer.flush()``, which first drains its
``ProducerBuffer`` (where table changelog writes wait). Its drain gives up
after 0.1 s without progress, and it counts a message as gone as soon as
it leaves the queue, before it reaches the Kafka client. Under load either
lets a commit pass changelog records that are still in memory, and a crash
then loses state updates whose source offsets are committed. The drain
below waits until every record buffered before it began has been handed
to the Kafka client (whose flush follows).

Its commit takes the offsets to commit and then flushes; with state and
outputs coalesced until the commit, both must come from one moment with
no record half applied, so the commit runs the worker's checkpoint
(streams/faust/checkpoint.py) to take the offsets and flush together. It commits
every acknowledged partition, not only those asked: one flushed key may
merge records of several input topics.

Its fetch loop also treats a jump in offsets as a "gap" (meant for
transaction markers) and marks the missing offsets acknowledged, so a
commit can pass records that were dropped, never applied. Our input
topics are written without transactions and read strictly in order
(streams/faust/ordering.py), so gaps are not recorded at all.
"""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version

from faust.exceptions import ProducerSendError
from faust.transport.consumer import Consumer
from faust.transport.producer import ProducerBuffer
from prometheus_client import Histogram

WRITTEN_FOR = "0.15.3"
COMMIT_SECONDS = Histogram(
    "skillstream_worker_commit_seconds",
    "Faust's commit: flush every buffered send, then commit the offsets",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)

_original_put = ProducerBuffer.put
_original_send_pending = ProducerBuffer._send_pending
_original_commit = Consumer.commit
_original_commit_tps = Consumer._commit_tps


async def _commit_timed(self: Consumer, *args, **kwargs) -> bool:  # noqa: ANN002, ANN003
    started = time.perf_counter()
    try:
        return await _original_commit(self, *args, **kwargs)
    finally:
        COMMIT_SECONDS.observe(time.perf_counter() - started)


async def _commit_tps_checkpointed(self: Consumer, tps, start_new_transaction: bool) -> bool:  # noqa: ANN001
    checkpoint = getattr(self.app, "checkpoint", None)
    if checkpoint is None:
        return await _original_commit_tps(self, tps, start_new_transaction)
    offsets = await checkpoint.run(
        lambda: self._filter_committable_offsets(list(self._filter_tps_with_pending_acks()))
    )
    if not offsets:
        return False
    try:
        await self._handle_attached(offsets)
        if checkpoint.before_commit:
            # The hooks see the checkpoint in Kafka; without any, the flush
            # of ``_commit_offsets`` below is the only one.
            await self.app.producer.flush()
            for hook in checkpoint.before_commit:
                await hook()
    except ProducerSendError as exc:
        await self.crash(exc)
        return False
    return await self._commit_offsets(offsets, start_new_transaction=start_new_transaction)


def _put_counted(self: ProducerBuffer, fut) -> None:  # noqa: ANN001 (faust type)
    self._skillstream_put = getattr(self, "_skillstream_put", 0) + 1
    _original_put(self, fut)


async def _send_pending_counted(self: ProducerBuffer, fut) -> None:  # noqa: ANN001
    try:
        await _original_send_pending(self, fut)
    finally:
        self._skillstream_sent = getattr(self, "_skillstream_sent", 0) + 1


async def _flush_until_drained(self: ProducerBuffer) -> None:
    # Wait for what was buffered when the flush began (one FIFO queue, one
    # sender task: sent in order), not for an empty buffer, which a busy
    # agent that keeps writing tables would never leave.
    target = getattr(self, "_skillstream_put", 0)
    while getattr(self, "_skillstream_sent", 0) < target:
        if self.state != "running" and self.size:
            raise RuntimeError("Cannot flush: Producer not Running")
        if self.state != "running":
            return
        await asyncio.sleep(0.002)


async def _no_gap(self: Consumer, tp: object, offset_from: int, offset_to: int) -> None:
    return None


# Table writes wait in the buffer; past this many the agent pauses until it
# drains. Faust's 100 paused the worker several times a second (one event
# writes several keys).
BUFFER_MAX_MESSAGES = 1000


def apply() -> None:
    found = version("faust-streaming")
    if found != WRITTEN_FOR:
        raise RuntimeError(
            f"streams/faust/fixes.py was written for faust-streaming {WRITTEN_FOR}, "
            f"found {found}: review the patches, then change the pin and WRITTEN_FOR"
        )
    ProducerBuffer.max_messages = BUFFER_MAX_MESSAGES
    Consumer.commit = _commit_timed  # type: ignore[method-assign]
    Consumer._commit_tps = _commit_tps_checkpointed  # type: ignore[method-assign]
    Consumer._add_gap = _no_gap  # type: ignore[method-assign]
    ProducerBuffer.put = _put_counted  # type: ignore[method-assign]
    ProducerBuffer._send_pending = _send_pending_counted  # type: ignore[method-assign]
    ProducerBuffer.flush = _flush_until_drained  # type: ignore[method-assign]
