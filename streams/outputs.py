"""Everything the worker writes besides its tables' changelogs: clean
events, program-week rows, live and daily scores, identity links, forwarded
and dead-lettered events, opt-out changes and tombstones. It is the
checkpoint's first participant (streams/faust/checkpoint.py)."""

from __future__ import annotations

import time
from datetime import date

import faust
import orjson

from core.keys import learner_key
from streams import aggregates
from streams.faust.checkpoint import RECORDS_OUT
from streams.pipeline import Item, Outcome, dead_letter_headers
from streams.records import iso_day, json_arrays, origin_headers
from streams.steps.identity import identity_pending_entry
from streams.topology import Tables, Topics


class Outputs:
    """Everything the worker writes besides its tables' changelogs.

    A record's clean events go out together, as one record holding a JSON
    array (``send_clean``, once the record's events are through): the sink
    explodes it, as the worker explodes the front door's batches. Program-week rows are held per key
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
        # source topic -> the clean rows of the record its agent is processing
        # (agents interleave: an imported record gives way to live ones)
        self._clean: dict[str, list[dict]] = {}

    async def send(self, t: faust.TopicT, key: str, value: dict) -> None:
        self._produce(t.get_topic_name(), key, value, origin_headers())

    def _produce(self, topic: str, key: str, value: dict | bytes, headers: list) -> None:
        # Straight to librdkafka, no future per record: Faust's flush before
        # each commit waits for these too (streams/faust/producer.py).
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        self.app.producer.produce(topic, key.encode(), raw, headers=headers)
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

    async def dead_letter(self, outcome: Outcome, key: bytes | None, value: bytes) -> None:
        """The failed event alone (``key``, ``value``: what a replay sends)."""
        headers = dead_letter_headers(outcome)
        await self.topics.dead.send(key=key, value=value, headers=headers)

    async def emit(self, item: Item) -> Item:
        """The clean event; if it counts, the learner's day, the program's
        week and the learner's live score are due at the checkpoint."""
        rec, t, tb, p = item.record, self.topics, self.tables, item.partition
        self._clean.setdefault(item.topic, []).append(_clean_row(rec))
        if not rec["countable"]:
            return item
        tenant, user, day = rec["tenant_id"], rec["learner_id"], rec["event_day"]
        aggregates.update_learner_day(tb.learner_day, rec, item.topic, item.position)
        self._scores.add((p, tenant, user, day))
        week_row = aggregates.update_program_week(
            tb.program_week, tb.program_week_members, rec, p, item.topic, item.position
        )
        if week_row:
            key = f"{tenant}:{week_row['program_id']}"  # one partition per program's rows
            self.hold(t.program_weekly, key, week_row, p, f"{key}:{week_row['week']}:{p}")
        return item

    def send_clean(self, source: str) -> None:
        """The clean events of the record of ``source`` just processed, as
        one record keyed by its first event's learner (the sink reads it
        whole); an import's record holds a chunk's events for a partition
        (thousands), so its rows go as several records of at most
        ``records.CLEAN_RECORD_MAX_BYTES`` each, under Kafka's message size."""
        rows = self._clean.pop(source, None)
        if rows:
            first = rows[0]
            key = learner_key(first["tenant_id"], first.get("learner_id") or first["anonymous_id"])
            topic, headers = self.topics.clean.get_topic_name(), origin_headers()
            for value in json_arrays(rows):
                self._produce(topic, key, value, headers)

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

    async def recompute(self, partition: int, day: int, last: int | None = None) -> int:
        """Daily snapshots of ``day`` (through ``last``): a score for every
        learner of this partition active in each day's window, from the
        days up to it (a learner first seen later has no score that day, as
        when the nightly recompute ran on time). One pass over the table
        for the whole range: an import recomputes the days it touched."""
        from streams.score import INACTIVE_DAYS, WINDOW_DAYS

        last = day if last is None else last
        reach = WINDOW_DAYS + INACTIVE_DAYS
        first_iso, last_iso = iso_day(day - reach), iso_day(last)
        active: dict[tuple[str, str], set[int]] = {}
        for key, row in self.tables.learner_day.items_in(partition):
            if row and first_iso <= row["day"] <= last_iso:
                learner = tuple(key.rsplit(":", 1)[0].split(":", 1))
                active.setdefault(learner, set()).add(date.fromisoformat(row["day"]).toordinal())
        now_ms = int(time.time() * 1000)
        topic = self.topics.scores.get_topic_name()
        n = 0
        for (tenant, user), days in sorted(active.items()):
            for d in range(day, last + 1):
                # gone quiet for three weeks before d (or not started yet): not active on d
                if not any(d - reach <= a <= d for a in days):
                    continue
                row = self._score_row(partition, tenant, user, d, "daily", now_ms * 2 + 1, now_ms)
                self._produce(topic, f"{tenant}:{user}:{iso_day(d)}", row, origin_headers())
                n += 1
        return n

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


_INTERNAL_FIELDS = ("component", "countable", "attributed_later", "imported")
# what a learner-day row already holds; the rest of a score row goes in its "score"
_SCORE_ROW_KEYS = ("tenant_id", "user_id", "day", "program_id", "cohort_id", "kind")


def _clean_row(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in _INTERNAL_FIELDS}
