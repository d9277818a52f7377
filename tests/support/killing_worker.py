"""The stream worker with a fault injected for the kill tests: SIGKILLed
once its checkpoints have flushed N keys, when that checkpoint's records
are in Kafka and its offsets are not yet committed (tests/test_stream.py).

    python -m tests.support.killing_worker   (SKILLSTREAM_KILL_BEFORE_COMMIT=N,
                                              and the worker's environment)

Everything else is the worker's own ``main``; the fault goes in through the
checkpoint's ``before_commit`` hooks.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from streams import worker
from streams.faust.checkpoint import Checkpoint

KILL_AFTER_KEYS_ENV = "SKILLSTREAM_KILL_BEFORE_COMMIT"


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


if __name__ == "__main__":
    worker.build = build_with_fault(int(os.environ[KILL_AFTER_KEYS_ENV]))
    worker.main()
