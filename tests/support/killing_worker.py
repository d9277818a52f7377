"""The stream worker with a fault injected for the kill tests
(tests/test_stream.py, tests/test_batches.py), one of:

  SKILLSTREAM_KILL_BEFORE_COMMIT=N  SIGKILLed once its checkpoints have flushed
                                    N keys: that checkpoint's records are in
                                    Kafka, its offsets are not committed
  SKILLSTREAM_KILL_MID_BATCH=N      SIGKILLed in the middle of a batch record:
                                    at the Nth event emitted that is not a
                                    record's first, once what it emitted so far
                                    is in Kafka

    python -m tests.support.killing_worker   (one of those, and the worker's environment)

Everything else is the worker's own ``main``; the faults go in through the
checkpoint's ``before_commit`` hooks and a wrapped ``Outputs.emit``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from streams import worker
from streams.faust.checkpoint import Checkpoint
from streams.outputs import Outputs
from streams.pipeline import Item

KILL_AFTER_KEYS_ENV = "SKILLSTREAM_KILL_BEFORE_COMMIT"
KILL_MID_BATCH_ENV = "SKILLSTREAM_KILL_MID_BATCH"


def kill_past(checkpoint: Checkpoint, keys: int) -> Callable[[], Awaitable[None]]:
    async def kill_if_past() -> None:
        if 0 < keys <= checkpoint.keys_flushed:
            os.kill(os.getpid(), signal.SIGKILL)

    return kill_if_past


def build_with_fault(keys: int) -> Callable[..., faust.App]:
    build = worker.build

    def build_killing(*args: Any, **kwargs: Any) -> faust.App:
        app = build(*args, **kwargs)
        app.checkpoint.before_commit.append(kill_past(app.checkpoint, keys))
        return app

    return build_killing


def kill_mid_batch(nth: int) -> None:
    emit, seen = Outputs.emit, 0

    async def emit_then_die(self: Outputs, item: Item) -> Item:
        nonlocal seen
        out = await emit(self, item)
        if item.batched and item.index > 0:
            seen += 1
            if seen >= nth:
                await self.app.producer.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return out

    Outputs.emit = emit_then_die  # type: ignore[method-assign]


if __name__ == "__main__":
    if KILL_MID_BATCH_ENV in os.environ:
        kill_mid_batch(int(os.environ[KILL_MID_BATCH_ENV]))
    else:
        worker.build = build_with_fault(int(os.environ[KILL_AFTER_KEYS_ENV]))
    worker.main()
