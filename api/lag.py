"""How far each stage of the pipeline is behind, read from Kafka itself.

A stage is a consumer group and the topics it reads: the worker reads what
the front door wrote, the sink reads what the worker wrote (and commits only
once ClickHouse holds it). Its lag is the records past the group's committed
offsets, and the age of the oldest of them, measured from when the front
door received the event behind it (the ``skillstream-origin`` header the
worker carries over, else the raw record's timestamp, which is its receipt).

The freshness **watermark** follows: every event received before it is
queryable. It is the oldest origin of any record a stage has not processed
(over every partition and stage), or the moment the offsets were read when
no stage is behind.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import Gauge

from core.settings import Settings
from core.threads import BackgroundThread
from sinks.sink import INGEST_LAG
from sinks.writers import WRITERS
from streams.records import origin_ms

log = logging.getLogger("skillstream.lag")

WORKER_INPUTS = ("events.raw", "events.attributed", "identity.links")
SINK_INPUTS = tuple(w.topic for w in WRITERS)
LAG_RECORDS = Gauge(
    "skillstream_stage_lag_records", "Records a stage has not processed yet", ["stage"]
)
LAG_SECONDS = Gauge(
    "skillstream_stage_lag_seconds",
    "Age of the oldest record a stage has not processed, from the event's receipt",
    ["stage"],
)
WATERMARK = Gauge(
    "skillstream_data_watermark_timestamp_seconds",
    "Every event received before this time (unix s) is queryable",
)
LAG_READ_ERRORS = Gauge(
    "skillstream_lag_read_failing", "1 while the lag cannot be read from Kafka, else 0"
)


@dataclass
class StageLag:
    stage: str
    group: str
    records: int
    oldest_origin_ms: int | None = None  # None: nothing waiting

    def age_s(self, now: float | None = None) -> float | None:
        if self.oldest_origin_ms is None:
            return None
        return max(0.0, (now or time.time()) - self.oldest_origin_ms / 1000)

    def line(self) -> str:
        age = self.age_s()
        shown = "-" if age is None else f"{age:.1f}s"
        return f"{self.stage:<8}{self.group:<32}{self.records:>10}  {shown:>8}"


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
        behind: list = []
        records = 0
        for tp in c.committed(tps, timeout=10) if tps else []:
            low, high = c.get_watermark_offsets(tp, timeout=10)
            start = tp.offset if tp.offset >= 0 else low
            if high > start:
                records += high - start
                behind.append(TopicPartition(tp.topic, tp.partition, start))
        oldest = _oldest_origin(c, behind)
    finally:
        c.close()
    return StageLag(stage, group, records, oldest)


def _oldest_origin(c, tps: list) -> int | None:  # noqa: ANN001 (confluent Consumer)
    """The oldest origin (ms) among the records at the given positions."""
    if not tps:
        return None
    c.assign(tps)
    origins: list[int] = []
    waiting = {(tp.topic, tp.partition) for tp in tps}
    deadline = time.monotonic() + 5
    while waiting and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is None or msg.error():
            continue
        key = (msg.topic(), msg.partition())
        if key in waiting:
            waiting.discard(key)
            origins.append(origin_ms(msg.headers(), msg.timestamp()[1]))
            c.pause([tp for tp in tps if (tp.topic, tp.partition) == key])
    if waiting:  # unread (deleted by retention meanwhile?): as old as can be said
        return int(time.time() * 1000) - 1
    return min(origins)


def pipeline_lag(bootstrap: str, settings: Settings) -> list[StageLag]:
    return [stage_lag(bootstrap, *s) for s in stages(settings)]


@dataclass
class LagSnapshot:
    read_at: float  # unix s, taken before the offsets were read
    stages: list[StageLag] = field(default_factory=list)

    @property
    def watermark_ms(self) -> int:
        origins = [s.oldest_origin_ms for s in self.stages if s.oldest_origin_ms is not None]
        return min([int(self.read_at * 1000), *origins])

    @property
    def end_to_end_ms(self) -> int:
        """now − the oldest accepted event not yet queryable (0: none)."""
        ages = [s.age_s() for s in self.stages if s.oldest_origin_ms is not None]
        return int(max(ages, default=0.0) * 1000)


class LagMonitor:
    """Reads every stage's lag every ``interval_s`` in a thread of its own and
    keeps the gauges current, whoever asks (not only `/health`)."""

    def __init__(self, bootstrap: str, settings: Settings, interval_s: float = 2.0) -> None:
        self.bootstrap = bootstrap
        self.settings = settings
        self.interval_s = interval_s
        self.latest: LagSnapshot | None = None
        # an hour of readings, for the dashboard's ops view
        self.history: deque[LagSnapshot] = deque(maxlen=int(3600 / max(interval_s, 0.5)))
        self._thread = BackgroundThread("lag-monitor", self._run)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop(10)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def read(self) -> LagSnapshot:
        snap = LagSnapshot(time.time(), pipeline_lag(self.bootstrap, self.settings))
        for s in snap.stages:
            LAG_RECORDS.labels(s.stage).set(s.records)
            LAG_SECONDS.labels(s.stage).set(s.age_s(snap.read_at) or 0.0)
        WATERMARK.set(snap.watermark_ms / 1000)
        INGEST_LAG.set(snap.end_to_end_ms)
        self.latest = snap
        self.history.append(snap)
        return snap

    def _run(self) -> None:
        while not self._thread.stopping.is_set():
            try:
                self.read()
                LAG_READ_ERRORS.set(0)
            except Exception as exc:  # Kafka away: say so, keep trying
                LAG_READ_ERRORS.set(1)
                log.warning("lag not read: %s", exc)
            self._thread.stopping.wait(self.interval_s)
