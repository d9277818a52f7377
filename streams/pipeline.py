"""Small named steps composed by one runner.

Each step takes an ``Item`` and returns it (possibly changed) or ``None`` to
drop it on purpose (a duplicate, an opted-out user's event). A step that
raises sends the item to the dead-letter topic with the step's name and the
error; the stream goes on with the next record.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram

STEP_OUTCOMES = Counter(
    "skillstream_pipeline_items_total",
    "Items by pipeline step and outcome (passed, dropped, failed = dead-lettered, retried)",
    ["step", "outcome"],
)
# Step latency is sampled (one item in TIME_EVERY): a histogram observation
# per step per event would cost the worker a few percent of its throughput.
TIME_EVERY = 16
STEP_SECONDS = Histogram(
    "skillstream_pipeline_step_seconds",
    "Time one item spends in one step",
    ["step"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0),
)


# A record holds at most this many events (a batch: api/ingest/batches.py).
BATCH_SPAN = 1 << 16


@dataclass
class Item:
    """One event on its way through the pipeline: a Kafka record's, or the
    ``index``-th of a batch record's (``value`` is then the whole record)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    record: dict[str, Any] | None = None  # set by the decode step
    index: int = 0
    batched: bool = False

    @property
    def position(self) -> float:
        """Where the event stands in its partition, in order: the record's
        offset, then its place in the batch. State remembers it to tell the
        same event delivered again (after a crash) from a duplicate; the
        first event of a record has the record's offset itself, so state
        written before records were batches reads the same."""
        return self.offset if self.index == 0 else self.offset + self.index / BATCH_SPAN


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Item], Awaitable[Item | None]]


@dataclass(frozen=True)
class Outcome:
    item: Item
    emitted: bool
    dropped_by: str | None = None
    failed_step: str | None = None
    error: str | None = None


class Pipeline:
    """Runs the steps in order. ``transient`` errors are the infrastructure's,
    not the record's (Kafka unavailable, a table's changelog not yet known):
    they are raised for the caller to retry the same record, never sent to
    the dead-letter topic."""

    def __init__(
        self, steps: Sequence[Step], transient: tuple[type[BaseException], ...] = ()
    ) -> None:
        self.steps = list(steps)
        self.transient = transient
        # labelled children resolved once: this runs for every step of every event
        self._passed = {s.name: STEP_OUTCOMES.labels(s.name, "passed") for s in self.steps}
        self._seconds = {s.name: STEP_SECONDS.labels(s.name) for s in self.steps}
        self._items = 0

    async def process(self, item: Item) -> Outcome:
        self._items += 1
        timed = self._items % TIME_EVERY == 0
        for step in self.steps:
            started = time.perf_counter() if timed else 0.0
            try:
                result = await step.run(item)
            except self.transient:
                STEP_OUTCOMES.labels(step.name, "retried").inc()
                raise
            except Exception as exc:  # one bad record never stops the stream
                STEP_OUTCOMES.labels(step.name, "failed").inc()
                return Outcome(item, False, failed_step=step.name, error=_describe(exc))
            finally:
                if timed:
                    self._seconds[step.name].observe(time.perf_counter() - started)
            if result is None:
                STEP_OUTCOMES.labels(step.name, "dropped").inc()
                return Outcome(item, False, dropped_by=step.name)
            self._passed[step.name].inc()
            item = result
        return Outcome(item, True)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


DLQ_PREFIX = "dlq."


def dead_letter_headers(outcome: Outcome) -> list[tuple[str, bytes]]:
    """Original headers plus where and why it failed (read by `skillstream dlq`)."""
    item = outcome.item
    original = [(k, v) for k, v in item.headers if not k.startswith(DLQ_PREFIX)]
    return original + [
        ("dlq.step", (outcome.failed_step or "").encode()),
        ("dlq.error", (outcome.error or "").encode()),
        ("dlq.source_topic", item.topic.encode()),
        ("dlq.source_partition", str(item.partition).encode()),
        ("dlq.source_offset", str(item.offset).encode()),
        *([("dlq.source_index", str(item.index).encode())] if item.batched else []),
        ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
    ]
