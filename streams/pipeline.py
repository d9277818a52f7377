"""Small named steps composed by one runner.

Each step takes an ``Item`` and returns it (possibly changed) or ``None`` to
drop it on purpose (a duplicate, an opted-out user's event). A step that
raises sends the item to the dead-letter topic with the step's name and the
error; the stream goes on with the next record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

STEP_OUTCOMES = Counter(
    "skillstream_pipeline_items_total", "Items by pipeline step and outcome", ["step", "outcome"]
)


@dataclass
class Item:
    """One Kafka record on its way through the pipeline."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    record: dict[str, Any] | None = None  # set by the decode step


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

    async def process(self, item: Item) -> Outcome:
        for step in self.steps:
            try:
                result = await step.run(item)
            except self.transient:
                STEP_OUTCOMES.labels(step.name, "retried").inc()
                raise
            except Exception as exc:  # one bad record never stops the stream
                STEP_OUTCOMES.labels(step.name, "failed").inc()
                return Outcome(item, False, failed_step=step.name, error=_describe(exc))
            if result is None:
                STEP_OUTCOMES.labels(step.name, "dropped").inc()
                return Outcome(item, False, dropped_by=step.name)
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
        ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
    ]
