"""The stream worker process: ``python -m streams.worker``.

Agents (all topics share one partition count, so Faust co-partitions them
and every table key is only ever touched by one partition):

  events.raw          decode → dedupe → identity → opt-out → enrich → emit
  events.attributed   opt-out → enrich → emit   (anonymous events, now a user's)
  identity.links      remember the link; forward the visitor's pending events
  control.recompute   nightly/on-demand score snapshot + dedupe sweep
  control.erasure     a learner's (or a visitor's) erasure (streams/erasure.py)

Several workers share the partitions through the consumer group, each with
its own WORKER_ID and state directory (docs/streams.md, Scaling out).

Delivery is at least once (Faust flushes every send before it commits an
offset); every state update is idempotent per source offset and every
output converges per key, so each event counts exactly once. The worker
never opens ClickHouse; the sink in the API process writes there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka.errors import KafkaError
from confluent_kafka import Producer
from faust.exceptions import PartitionsMismatch
from faust.types import TP
from mode import Worker

from core.kafka_info import while_settling
from core.keys import learner_key
from core.logs import setup_logging
from core.settings import Settings, get_settings
from core.topics import durability, existing_partitions
from schemas.codec import codec_for
from streams import aggregates
from streams.app import create_app
from streams.checkpoint import RECORDS_OUT, Checkpoint
from streams.erasure import Eraser
from streams.ordering import InOrder
from streams.pipeline import Item, Outcome, Pipeline, Step, dead_letter_headers
from streams.records import iso_day, normalise, origin_headers
from streams.state import ROCKSDB_OPTIONS, CommittedInput, StateTable
from streams.state_check import ChangelogView
from streams.steps.decode import decode_step
from streams.steps.dedupe import dedupe_step
from streams.steps.enrich import enrich_step
from streams.steps.identity import identity_pending_entry, identity_step
from streams.steps.optout import optout_step

log = logging.getLogger("skillstream.worker")
# Errors of the infrastructure, not of a record: retry the record.
TRANSIENT: tuple[type[BaseException], ...] = (PartitionsMismatch, KafkaError, asyncio.TimeoutError)
STALL_CHECK_S = 2.5


def _headers(msg) -> list[tuple[str, bytes]]:
    h = msg.headers or []
    return list(h.items()) if isinstance(h, dict) else list(h)


INPUT_TOPICS = (
    "events.raw", "events.attributed", "identity.links", "control.recompute", "control.erasure",
)  # fmt: skip


@dataclass
class Topics:
    raw: faust.TopicT
    dead: faust.TopicT
    attributed: faust.TopicT
    links: faust.TopicT
    clean: faust.TopicT
    learner_daily: faust.TopicT
    program_weekly: faust.TopicT
    scores: faust.TopicT
    optout: faust.TopicT
    ticks: faust.TopicT
    erasure: faust.TopicT

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Topics:
        def topic(name: str, raw: bool = False) -> faust.TopicT:
            return app.topic(settings.topic(name), key_serializer="raw",
                             value_serializer="raw" if raw else "json",
                             partitions=settings.topic_partitions)  # fmt: skip

        return cls(
            topic("events.raw", raw=True), topic("events.dead_letter", raw=True),
            topic("events.attributed"), topic("identity.links"), topic("events.clean"),
            topic("aggregates.learner_daily"), topic("aggregates.program_weekly"),
            topic("scores.learner"), topic("optout.state"), topic("control.recompute"),
            topic("control.erasure"),
        )  # fmt: skip


@dataclass
class Tables:
    seen: StateTable
    seen_attributed: StateTable
    links: StateTable
    links_sent: StateTable
    pending: StateTable
    optout: StateTable
    watermarks: StateTable
    learner_day: StateTable
    program_week: StateTable
    program_week_members: StateTable

    @classmethod
    def declare(
        cls, app: faust.App, settings: Settings, bootstrap: str, app_id: str, topics: Topics
    ) -> Tables:
        # table recovery keeps what committed input wrote (streams/state.py)
        committed = CommittedInput(lambda: committed_offsets(bootstrap, app_id, settings))
        changelogs = ChangelogView(
            bootstrap, lambda: [t.changelog_topic.get_topic_name() for t in app.tables.values()]
        )

        def table(name: str, **kwargs: Any) -> StateTable:
            t = StateTable(app, name=name, default=None, beacon=app.tables.beacon,
                           partitions=settings.topic_partitions, key_type=str,
                           options=dict(ROCKSDB_OPTIONS), committed=committed,
                           changelogs=changelogs, **kwargs)  # fmt: skip
            app.tables.add(t)
            return t

        # A learner's day is its own output: the row the sink writes (with the
        # live score) is the table's changelog record, one record for both.
        learner_day = table("learner_day", changelog_topic=topics.learner_daily, raw_keys=True)
        return cls(
            table("dedupe"), table("dedupe_attributed"), table("identity_links"),
            table("identity_links_sent"), table("identity_pending"), table("optout"),
            table("watermarks"), learner_day, table("program_week"),
            table("program_week_members"),
        )  # fmt: skip


class Outputs:
    """Everything the worker writes besides its tables' changelogs.

    Clean events go out as they come; program-week rows are held per key
    until the checkpoint, which writes each once. A learner's day is the
    learner_day table's changelog record; its live score is computed at the
    checkpoint, once per learner-day changed since the last one, and goes
    into that record."""

    name = "outputs"

    def __init__(self, app: faust.App, topics: Topics, tables: Tables) -> None:
        self.app, self.topics, self.tables = app, topics, tables
        # (topic, row id) -> [partition, key, row, origin headers of its first update]
        self._rows: dict[tuple[str, str], list] = {}
        self._scores: set[tuple[int, str, str, int]] = set()  # (partition, tenant, user, day)

    async def send(self, t: faust.TopicT, key: str, value: dict) -> None:
        self._produce(t.get_topic_name(), key, value, origin_headers())

    def _produce(self, topic: str, key: str, value: dict, headers: list) -> None:
        # Straight to librdkafka, no future per record: Faust's flush before
        # each commit waits for these too (streams/rdkafka_producer.py).
        self.app.producer.produce(topic, key.encode(), orjson.dumps(value), headers=headers)
        RECORDS_OUT.labels(topic).inc()

    def send_now(self, t: faust.TopicT, key: str, value: dict) -> None:
        self._produce(t.get_topic_name(), key, value, origin_headers())

    def tombstone(self, t: faust.TopicT, key: str) -> None:
        """Delete ``key`` from a compacted topic."""
        topic = t.get_topic_name()
        self.app.producer.produce(topic, key.encode(), None, headers=origin_headers())
        RECORDS_OUT.labels(topic).inc()

    def forget_learner(self, partition: int, tenant: str, user: str) -> None:
        """No live score for an erased learner at the next checkpoint."""
        self._scores = {k for k in self._scores if k[:3] != (partition, tenant, user)}

    def hold(self, t: faust.TopicT, key: str, row: dict, partition: int, row_id: str) -> None:
        """Send ``row`` at the checkpoint unless a newer one of ``row_id`` replaces it."""
        held = self._rows.get((t.get_topic_name(), row_id))
        if held is None:
            self._rows[(t.get_topic_name(), row_id)] = [partition, key, row, origin_headers()]
        else:
            held[2] = row

    # Sends that a state change later suppresses (a link marked sent, a
    # pending list forwarded) are not awaited: the state remembers the
    # source offset that sent them, and that record delivered again after a
    # crash sends them again (their receivers are idempotent).
    async def send_link(self, key: str, value: dict) -> None:
        await self.send(self.topics.links, key, value)

    async def forward(self, key: str, rec: dict) -> None:
        await self.send(self.topics.attributed, key, rec)

    async def emit_optout(self, change: dict) -> None:
        await self.send(
            self.topics.optout, learner_key(change["tenant_id"], change["user_id"]), change
        )

    async def dead_letter(self, outcome: Outcome, msg: Any) -> None:
        headers = dead_letter_headers(outcome)
        await self.topics.dead.send(key=msg.key, value=msg.value, headers=headers)

    async def emit(self, item: Item) -> Item:
        """The clean event; if it counts, the learner's day, the program's
        week and the learner's live score are due at the checkpoint."""
        rec, t, tb, p = item.record, self.topics, self.tables, item.partition
        learner = rec.get("learner_id") or rec["anonymous_id"]
        await self.send(t.clean, learner_key(rec["tenant_id"], learner), _clean_row(rec))
        if not rec["countable"]:
            return item
        tenant, user, day = rec["tenant_id"], rec["learner_id"], rec["event_day"]
        aggregates.update_learner_day(tb.learner_day, rec, item.topic, item.offset)
        self._scores.add((p, tenant, user, day))
        week_row = aggregates.update_program_week(
            tb.program_week, tb.program_week_members, rec, p, item.topic, item.offset
        )
        if week_row:
            key = f"{tenant}:{week_row['program_id']}"  # one partition per program's rows
            self.hold(t.program_weekly, key, week_row, p, f"{key}:{week_row['week']}:{p}")
        return item

    def flush(self) -> int:
        """The checkpoint's step 3: every held row; every due live score
        into its learner-day row (which the learner_day table flushes next)."""
        rows, self._rows = self._rows, {}
        for (topic, _), (_, key, row, headers) in rows.items():
            self._produce(topic, key, row, headers)
        scores, self._scores = self._scores, set()
        now_ms = int(time.time() * 1000)
        learner_day = self.tables.learner_day
        for p, tenant, user, day in scores:
            row = learner_day.pending_in(p, aggregates.learner_day_key(tenant, user, day))
            if row is not None:
                score = self._score_row(p, tenant, user, day, "live", now_ms * 2, now_ms)
                row["score"] = {k: v for k, v in score.items() if k not in _SCORE_ROW_KEYS}
        return len(rows) + len(scores)

    def _score_row(self, p: int, tenant: str, user: str, day: int, kind: str,
                   version: int, now_ms: int) -> dict:  # fmt: skip
        keys = [aggregates.learner_day_key(tenant, user, d)
                for d in range(day - aggregates.SCORE_LOOKBACK_DAYS, day + 1)]  # fmt: skip
        days = self.tables.learner_day.values_in(p, keys)
        return aggregates.learner_score_row(days.get, tenant, user, day, kind, version, now_ms)

    def drop_partitions(self, partitions: set[int]) -> None:
        self._rows = {k: v for k, v in self._rows.items() if v[0] not in partitions}
        self._scores = {k for k in self._scores if k[0] not in partitions}

    async def recompute(self, partition: int, day: int) -> int:
        """Daily snapshot: a score for every learner of this partition active in the window."""
        from streams.score import INACTIVE_DAYS, WINDOW_DAYS

        oldest = iso_day(day - WINDOW_DAYS - INACTIVE_DAYS)
        learners = {
            tuple(key.rsplit(":", 1)[0].split(":", 1))
            for key, row in self.tables.learner_day.items_in(partition)
            if row and row["day"] >= oldest  # gone quiet for three weeks: no longer active
        }
        now_ms = int(time.time() * 1000)
        topic = self.topics.scores.get_topic_name()
        for tenant, user in sorted(learners):
            row = self._score_row(partition, tenant, user, day, "daily", now_ms * 2 + 1, now_ms)
            self._produce(topic, f"{tenant}:{user}:{iso_day(day)}", row, origin_headers())
        return len(learners)

    async def forward_pending(self, link: dict, offset: int) -> None:
        """A link arrived: the visitor's pending anonymous events go to the user."""
        links, pending = self.tables.links, self.tables.pending
        key = f"{link['tenant_id']}|{link['anonymous_id']}"
        links[key] = link["user_id"]
        entry = identity_pending_entry(pending.get(key))
        if entry["events"] and entry["forwarded_by"] in (None, offset):
            for rec in entry["events"]:
                rec = {**rec, "learner_id": link["user_id"], "attributed_later": True}
                await self.forward(learner_key(link["tenant_id"], link["user_id"]), rec)
            # kept, marked: this link record delivered again re-forwards them
            pending[key] = {"events": entry["events"], "forwarded_by": offset}


def pipelines(settings: Settings, tables: Tables, out: Outputs) -> tuple[Pipeline, Pipeline]:
    """The raw events' pipeline and the attributed (forwarded) events' one."""
    emit = Step("emit", out.emit)
    enrich = enrich_step(tables.watermarks, settings.allowed_lateness_days)
    optout = optout_step(tables.optout, out.emit_optout)
    raw = Pipeline(
        transient=TRANSIENT,
        steps=[
            decode_step(codec_for(settings.schema_registry_url, settings.topic("events.raw"))),
            Step("normalise", _normalise),
            dedupe_step(tables.seen),
            identity_step(
                tables.links, tables.links_sent, tables.pending, out.send_link, out.forward
            ),  # fmt: skip
            optout,
            enrich,
            emit,
        ],
    )
    # Forwarded events are deduped again on the user's partition: a link can
    # be delivered twice (a link re-sent after a restart), its pending events
    # must still count once.
    attributed = Pipeline(
        [Step("dedupe_attributed", dedupe_step(tables.seen_attributed).run), optout, enrich, emit],
        transient=TRANSIENT,
    )
    return raw, attributed


def build(settings: Settings, bootstrap: str, app_id: str | None = None) -> faust.App:
    # The app id names the consumer group and the changelog topics: derive it
    # from the topic prefix so two stacks on one cluster never share state.
    app_id = app_id or f"{settings.topic_prefix}-worker"
    app = create_app(settings, bootstrap, app_id)
    topics = Topics.declare(app, settings)
    tables = Tables.declare(app, settings, bootstrap, app_id, topics)
    out = Outputs(app, topics, tables)
    # Faust's commit runs it (streams/faust_fixes.py): outputs first, whose
    # scores go into the learner-day rows the tables then flush.
    app.checkpoint = Checkpoint()
    for t in (out, *(getattr(tables, f.name) for f in dataclasses.fields(tables))):
        app.checkpoint.add(t)
    _agents(app, settings, bootstrap, topics, tables, out)
    return app


def _agents(app: faust.App, settings: Settings, bootstrap: str, topics: Topics,
            tables: Tables, out: Outputs) -> None:  # fmt: skip
    raw_pipeline, attributed_pipeline = pipelines(settings, tables, out)
    # Every agent applies its partitions strictly in order, acking by hand
    # (see streams/ordering.py): the idempotent state depends on it.
    in_order = InOrder(app, bootstrap, app.checkpoint)
    _follow_rebalances(app, in_order)
    watched = {t.get_topic_name() for t in (topics.raw, topics.attributed, topics.links,
                                            topics.erasure)}  # fmt: skip

    @app.timer(interval=STALL_CHECK_S)
    async def watch_progress() -> None:
        await in_order.watch(watched)

    async def apply_raw(event) -> None:
        msg = event.message
        item = Item(msg.topic, msg.partition, msg.offset, msg.key, msg.value, _headers(msg))
        outcome = await until_done(raw_pipeline, item)
        if outcome.failed_step:
            await out.dead_letter(outcome, msg)

    async def apply_attributed(event) -> None:
        msg = event.message
        item = Item(msg.topic, msg.partition, msg.offset, msg.key, b"", _headers(msg))
        item.record = dict(event.value)
        outcome = await until_done(attributed_pipeline, item)
        if outcome.failed_step:
            await out.dead_letter(outcome, msg)

    @app.agent(topics.raw)
    async def process_raw(stream):
        await in_order.consume(stream, apply_raw)

    @app.agent(topics.attributed)
    async def process_attributed(stream):
        await in_order.consume(stream, apply_attributed)

    @app.agent(topics.links)
    async def process_links(stream):
        await in_order.consume(stream, lambda e: out.forward_pending(e.value, e.message.offset))

    eraser = Eraser(topics, tables, out)

    @app.agent(topics.erasure)
    async def process_erasure(stream):
        await in_order.consume(stream, lambda e: eraser.apply(e.value, e.message.partition))

    @app.agent(topics.ticks)
    async def process_ticks(stream):
        async for event in stream.events():
            tick, partition = event.value, event.message.partition
            day = date.fromisoformat(tick["date"]).toordinal()
            n = await out.recompute(partition, day)
            # by receive day, relative to now (not to the tick's date, which
            # `recompute --date` may set anywhere)
            today = datetime.now(UTC).date().toordinal()
            swept = _sweep_dedupe(tables.seen, partition, today - settings.dedupe_window_days)
            log.warning(
                "recompute %s p%s: %d scores, %d ids swept", tick["date"], partition, n, swept
            )

    @app.crontab(settings.recompute_cron, timezone=UTC)
    async def nightly_recompute() -> None:
        # Every worker runs this crontab; one sends the ticks: whoever owns
        # the first partition of the ticks topic. Each tick is then applied
        # by the owner of its partition.
        if TP(topics.ticks.get_topic_name(), 0) not in app.consumer.assignment():
            return
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
        request_recompute(bootstrap, settings, yesterday)


def _follow_rebalances(app: faust.App, in_order: InOrder) -> None:
    """A partition this worker keeps keeps everything pending for it (state,
    held rows, the offset expected next: they agree with each other); one
    it lost forgets all of it, since its next owner processes again what
    was not committed. Faust revokes everything at each rebalance, so
    "lost" is known only once the new assignment is."""
    revoked: set[TP] = set()

    async def on_revoked(sender: Any, tps: set[TP], **kwargs: Any) -> None:
        revoked.update(tps)

    async def on_assigned(sender: Any, tps: set[TP], **kwargs: Any) -> None:
        lost = revoked - tps
        revoked.clear()
        in_order.forget(lost)
        kept = {tp.partition for tp in tps}
        app.checkpoint.drop_partitions({tp.partition for tp in lost} - kept)

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)


async def until_done(pipeline: Pipeline, item: Item) -> Outcome:
    """Process one record, retrying it on transient errors with backoff:
    every step is idempotent for the same source offset."""
    for attempt in itertools.count():
        try:
            return await pipeline.process(item)
        except TRANSIENT as exc:
            log.warning("%s[%d]@%d: %s; retrying", item.topic, item.partition, item.offset, exc)
            await asyncio.sleep(min(5.0, 0.1 * 2**attempt))
    raise AssertionError("unreachable")


def ensure_changelogs(app: faust.App, bootstrap: str, settings: Settings) -> None:
    """Create the tables' changelog topics before the worker joins its group:
    a changelog that Faust creates itself at start-up can be missing from
    the consumer's metadata for minutes, and every write to that table fails
    meanwhile (PartitionsMismatch)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    names = [t.changelog_topic.get_topic_name() for t in app.tables.values()]
    existing = set(admin.list_topics(timeout=10).topics)
    replicas, safety = durability(admin)
    new = [
        NewTopic(
            n, settings.topic_partitions, replicas, config={"cleanup.policy": "compact", **safety}
        )  # fmt: skip
        for n in names
        if n not in existing
    ]
    for fut in (admin.create_topics(new, operation_timeout=15) if new else {}).values():
        try:
            fut.result()
        except Exception as exc:  # created meanwhile by another worker: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=10).topics
        if all(n in md and len(md[n].partitions) == settings.topic_partitions for n in names):
            return
        time.sleep(0.2)


@while_settling
def committed_offsets(bootstrap: str, group: str, settings: Settings) -> dict[tuple[str, int], int]:
    """The group's committed offset of every input partition (0 where none):
    where processing resumes, and so what a restored table may contain."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})
    try:
        tps = [
            TopicPartition(settings.topic(t), p)
            for t in INPUT_TOPICS
            for p in range(settings.topic_partitions)
        ]
        return {(tp.topic, tp.partition): max(0, tp.offset) for tp in c.committed(tps, timeout=30)}
    finally:
        c.close()


async def _normalise(item: Item) -> Item:
    item.record = normalise(item.record)
    return item


_INTERNAL_FIELDS = ("component", "countable", "attributed_later")
# what a learner-day row already holds; the rest of a score row goes in its "score"
_SCORE_ROW_KEYS = ("tenant_id", "user_id", "day", "program_id", "cohort_id", "kind")


def _clean_row(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in _INTERNAL_FIELDS}


def _sweep_dedupe(seen, partition: int, oldest_day: int) -> int:
    """Forget ids older than the window. Only this partition's keys: a delete
    is logged to the changelog partition of the event being processed."""
    store = getattr(seen, "data", None)
    dbs = getattr(store, "_dbs", None)
    if not dbs or partition not in dbs:
        return 0
    expired = []
    for raw_key, raw_value in dbs[partition].items():
        try:
            day = int(json.loads(raw_value)[0])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        if day < oldest_day:
            expired.append(raw_key.decode() if isinstance(raw_key, bytes) else raw_key)
    for key in expired:
        key = key.strip('"')
        if key in seen:
            del seen[key]
    return len(expired)


def request_recompute(bootstrap: str, settings: Settings, day: date) -> int:
    """Produce one recompute tick per partition (used by the crontab and the CLI)."""
    from confluent_kafka.admin import AdminClient

    name = settings.topic("control.recompute")
    md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(name, timeout=10)
    partitions = list(md.topics[name].partitions)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    body = json.dumps({"date": day.isoformat(), "requested_at": time.time()}).encode()
    for part in partitions:
        p.produce(name, body, b"recompute", partition=part)
    if p.flush(30) != 0:
        raise RuntimeError("recompute ticks not acknowledged by Kafka")
    return len(partitions)


CLEAN_MARKER = "CLEAN_SHUTDOWN"


def discard_state_after_crash(state_dir: Path) -> bool:
    """After a crash, local RocksDB may hold writes whose changelog records
    never reached Kafka. Unless the last run stopped cleanly, drop the local
    state and restore the tables from the changelogs, so local state and
    Kafka agree before replay starts."""
    marker = state_dir / CLEAN_MARKER
    if marker.exists():
        marker.unlink()
        return False
    if state_dir.exists() and any(state_dir.iterdir()):
        shutil.rmtree(state_dir)
        return True
    return False


def adopt_unnamed_state(settings: Settings) -> None:
    """A run directory from before workers had their own state directories
    holds one worker's state straight under ``state/``: it is worker 0's."""
    root = settings.state_dir.parent
    if settings.worker_id != "0" or settings.state_dir.exists() or not root.is_dir():
        return
    unnamed = [p for p in root.iterdir() if not p.name.startswith("worker-")]
    if unnamed:
        settings.state_dir.mkdir(parents=True)
        for p in unnamed:
            p.rename(settings.state_dir / p.name)


def main() -> None:
    settings = get_settings()
    setup_logging("worker", settings, logging.WARNING)
    if not settings.kafka_bootstrap:
        sys.exit("KAFKA_BOOTSTRAP must be set for the worker (skillstream up sets it)")
    if problem := settings.dedupe_window_problem():
        sys.exit(f"worker not started: {problem}")
    have = existing_partitions(settings.kafka_bootstrap, settings)
    if have is not None and have != settings.topic_partitions:
        sys.exit(
            f"worker not started: the topics have {have} partitions, TOPIC_PARTITIONS is "
            f"{settings.topic_partitions}: set it to {have}, or move to new topics "
            "(docs/streams.md, Partitions)"
        )
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    adopt_unnamed_state(settings)
    if discard_state_after_crash(settings.state_dir):
        log.warning("previous run did not stop cleanly: restoring tables from changelogs")
    app = build(settings, settings.kafka_bootstrap)
    ensure_changelogs(app, settings.kafka_bootstrap, settings)
    code = 1
    try:
        Worker(app, quiet=True, override_logging=False).execute_from_commandline()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    if code == 0:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        (settings.state_dir / CLEAN_MARKER).write_text(str(time.time()))
    sys.exit(code)


if __name__ == "__main__":
    main()
