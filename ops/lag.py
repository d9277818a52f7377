"""How far each stage of the pipeline is behind, read from Kafka itself.

A stage is a consumer group and the topics it reads: the worker reads what
the front door wrote, the sink reads what the worker wrote. Its lag is the
records past the group's committed offsets, and the age of the oldest of
them (the timestamp of the record at each committed offset).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ops.settings import Settings

WORKER_INPUTS = ("events.raw", "events.attributed", "identity.links")
SINK_INPUTS = (
    "events.clean",
    "aggregates.learner_daily",
    "aggregates.program_weekly",
    "scores.learner",
    "optout.state",
)


@dataclass
class StageLag:
    stage: str
    group: str
    records: int
    oldest_age_s: float | None  # None: nothing waiting

    def line(self) -> str:
        age = "-" if self.oldest_age_s is None else f"{self.oldest_age_s:.1f}s"
        return f"{self.stage:<8}{self.group:<32}{self.records:>10}  {age:>8}"


def stages(settings: Settings) -> list[tuple[str, str, list[str]]]:
    p = settings.topic_prefix
    return [
        ("worker", f"{p}-worker", [settings.topic(t) for t in WORKER_INPUTS]),
        ("sink", f"{p}-sink", [settings.topic(t) for t in SINK_INPUTS]),
    ]


def stage_lag(bootstrap: str, stage: str, group: str, topics: list[str]) -> StageLag:
    from confluent_kafka import Consumer, TopicPartition

    conf = {"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0}
    c = Consumer({**conf, "enable.auto.commit": False})
    try:
        md = c.list_topics(timeout=10).topics
        tps = [TopicPartition(t, p) for t in topics if t in md for p in md[t].partitions]
        behind: list[tuple[TopicPartition, int]] = []
        records = 0
        for tp in c.committed(tps, timeout=10) if tps else []:
            low, high = c.get_watermark_offsets(tp, timeout=10)
            start = tp.offset if tp.offset >= 0 else low
            if high > start:
                records += high - start
                behind.append((TopicPartition(tp.topic, tp.partition, start), high))
        oldest = _oldest_timestamp(c, [tp for tp, _ in behind])
    finally:
        c.close()
    age = None if oldest is None else max(0.0, time.time() - oldest / 1000)
    return StageLag(stage, group, records, age)


def _oldest_timestamp(c, tps: list) -> int | None:  # noqa: ANN001 (confluent Consumer)
    """The smallest record timestamp at the given positions (ms)."""
    if not tps:
        return None
    c.assign(tps)
    stamps: list[int] = []
    waiting = {(tp.topic, tp.partition) for tp in tps}
    deadline = time.monotonic() + 5
    while waiting and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is None or msg.error():
            continue
        key = (msg.topic(), msg.partition())
        if key in waiting:
            waiting.discard(key)
            stamps.append(msg.timestamp()[1])
            c.pause([tp for tp in tps if (tp.topic, tp.partition) == key])
    return min(stamps, default=None)


def pipeline_lag(bootstrap: str, settings: Settings) -> list[StageLag]:
    return [stage_lag(bootstrap, *s) for s in stages(settings)]
