"""The stream peer: the same learner-day aggregates, as a Quix Streams app.

What a team would write with Quix Streams instead of our worker, reading
our raw topic and writing our ClickHouse ``learner_daily`` table:

  raw (Avro batch records, as the front door writes them: no key)
    → decode (our codec, one call per record: both sides pay the same decode)
    → explode: apply(..., expand=True)          one row per event
    → to_topic events, keyed by tenant:learner-or-visitor
  events (JSON, key tenant:learner-or-visitor)
    → dedupe by (tenant, client_event_id)      stateful filter, RocksDB
    ├─ identified events: already keyed by learner, straight to the window
    └─ anonymous events, and the first link per (learner, visitor)
         → group_by visitor                     the one repartition
         → identity: anonymous events wait until the visitor signs in,
           then count for the user              stateful, RocksDB
         → to_topic attributed, keyed by learner (one group_by per dataframe)
    → concat (both keyed by learner; copartitioned: Quix's producer hashes
      keys with murmur2 like ours, and both topics have the same partition count)
    → event time → tumbling 1-day window, 7 days grace, reduce to the counts
    → .current() → BatchingSink → ClickHouse (newest row per key per batch)

Only what needs another key is re-partitioned, as Quix's docs advise.

A raw record is a batch of one request's events bound for one partition,
written without a key. Quix keeps state and windows per message key, so
after the explode each event gets its learner key back (the key its own
record had before batches) the way Quix re-keys: through a topic. Quix
allows one ``group_by`` per dataframe (a nested one raises
``GroupByNestingLimit``) and the visitor re-key below already uses it, so
the learner re-key is a ``to_topic`` with a key function, as the
attributed events' is. Every event thus passes one more topic before
dedupe, which our worker does not need (it reads each event's key inside
the batch on the partition it arrived on). That topic (its event time
taken by the same timestamp extractor the raw topic had) is the only
change to the app for batches.

It runs in its own process with its own embedded ClickHouse data path
(chdb serves one process per path) and reports when the table holds every
expected event, so the timing includes start-up like the worker's does.

    python -m bench.peers.quix_app --bootstrap B --topic T --chdb DIR \
        --state-dir DIR --expect N [--timeout S]
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from quixstreams import Application, State
from quixstreams.models import TopicConfig
from quixstreams.models.serializers import Deserializer
from quixstreams.sinks import BatchingSink, SinkBatch

from bench.peers.learner_daily import COUNTERS, TOTALS_SQL, peer_arguments, wait_until_counted
from core.keys import learner_key_bytes
from schemas.codec import SingleObjectCodec
from schemas.dictionary import BY_NAME
from sinks.store import Store, open_store
from streams.records import normalise

PENDING_MAX_EVENTS = 500  # the worker's bound on anonymous events held per visitor


class AvroDeserializer(Deserializer):
    def __init__(self) -> None:
        super().__init__()
        self.codec = SingleObjectCodec()

    def __call__(self, value: bytes, ctx: Any) -> list[dict]:
        return [normalise(rec) for rec in self.codec.decode_many(value)]


def events_of(batch: list[dict]) -> list[dict]:
    return batch


def learner_of(rec: dict) -> bytes:
    """The key each event's own record had before batches: bytes, like the
    attributed topic's keys, so a learner's window state is one prefix
    whichever topic its events come from."""
    return learner_key_bytes(rec["tenant_id"], rec["user_id"] or rec["anonymous_id"])


def first_seen(rec: dict, state: State) -> bool:
    """Dedupe. A duplicate carries the same message key as the original, so
    the key-scoped state sees both."""
    key = f"{rec['tenant_id']}|{rec['client_event_id']}"
    if state.get(key) is not None:
        return False
    state.set(key, 1)
    return True


def identified(rec: dict) -> bool:
    return bool(rec.get("user_id"))


def to_visitor(rec: dict, state: State) -> bool:
    """Anonymous events, and an identified event the first time it names
    its visitor (the link), go to the visitor's partition; state keyed by
    the learner remembers which visitors it already linked (as the worker's
    sent-links table does: a visitor re-linked to a learner it had before
    is not sent again)."""
    if not rec.get("user_id"):
        return True
    anon = rec.get("anonymous_id")
    if not anon or state.get(f"linked|{anon}") is not None:
        return False
    state.set(f"linked|{anon}", 1)
    return True


def attribute(rec: dict, state: State) -> list[dict]:
    """Per visitor: a link sets the learner and releases the anonymous
    events that waited (the link itself was counted on its own partition);
    anonymous events after it count for the learner at once."""
    user = rec.get("user_id")
    if user:
        out = []
        if state.get("user") != user:
            state.set("user", user)
            out = [{**p, "learner_id": user} for p in state.get("pending", [])]
            state.delete("pending")
        return out
    linked = state.get("user")
    if linked:
        rec["learner_id"] = linked
        return [rec]
    state.set("pending", ([*state.get("pending", []), rec])[-PENDING_MAX_EVENTS:])
    return []


def _counts(agg: dict, rec: dict) -> dict:
    c = dict(agg)
    c["events"] += 1
    spec = BY_NAME.get(rec["event_name"])
    if spec and spec.engagement_component:
        c[spec.engagement_component] += 1
    minutes = rec["properties"].get("duration_minutes")
    if isinstance(minutes, int) and minutes > 0:
        c["active_minutes"] += minutes
    if rec["event_name"] == "program_completed":
        c["completions"] += 1
    c["program_id"] = rec.get("program_id") or agg.get("program_id")
    c["cohort_id"] = rec.get("cohort_id") or agg.get("cohort_id")
    return c


def initializer(rec: dict) -> dict:
    zero = {"tenant_id": rec["tenant_id"], "user_id": rec["learner_id"]}
    zero.update(dict.fromkeys(COUNTERS, 0))
    return _counts(zero, rec)


def to_row(window: dict) -> dict:
    v = window["value"]
    return {
        **v,
        "day": datetime.fromtimestamp(window["start"] / 1000, UTC).date().isoformat(),
        "version": v["events"],  # grows with every update of the window
        "updated_at": datetime.now(UTC),
    }


class ClickHouseSink(BatchingSink):
    """Writes learner_daily through our store interface, like our sink."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    def write(self, batch: SinkBatch) -> None:
        newest: dict[tuple, dict] = {}
        for item in batch:
            r = item.value
            newest[(r["tenant_id"], r["user_id"], r["day"])] = r
        token = f"quix:{batch.topic}:{batch.partition}:{batch.start_offset}:{batch.size}"
        self.store.insert("learner_daily", list(newest.values()), token)


def build(
    bootstrap: str, topic: str, partitions: int, state_dir: str, store: Store, group: str
) -> Application:
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        # Quix's own defaults: commit (and checkpoint, and sink flush) every 5 s
        loglevel="WARNING",
    )
    event_time = lambda value, headers, ts, ts_type: value["event_timestamp"]  # noqa: E731
    raw = app.topic(topic, value_deserializer=AvroDeserializer())
    attributed = app.topic(
        f"{topic}-quix-attributed",
        # bytes, like the raw topic's keys: a learner's window state is one
        # prefix whichever topic its events come from
        key_serializer="bytes",
        key_deserializer="bytes",
        config=TopicConfig(num_partitions=partitions, replication_factor=1),
        timestamp_extractor=event_time,
    )
    keyed = app.topic(
        f"{topic}-quix-events",
        key_serializer="bytes",
        key_deserializer="bytes",
        config=TopicConfig(num_partitions=partitions, replication_factor=1),
        timestamp_extractor=event_time,
    )
    app.dataframe(raw).apply(events_of, expand=True).to_topic(keyed, key=learner_of)
    sdf = app.dataframe(keyed).filter(first_seen, stateful=True)
    known = sdf[sdf.apply(identified)]  # learner_id = user_id already (normalise)
    visitors = sdf[sdf.apply(to_visitor, stateful=True)]
    visitors = visitors.group_by(lambda r: f"{r['tenant_id']}:{r['anonymous_id']}", name="visitor")
    visitors = visitors.apply(attribute, stateful=True, expand=True)
    visitors.to_topic(attributed, key=lambda r: f"{r['tenant_id']}:{r['learner_id']}".encode())

    sdf = known.concat(app.dataframe(attributed))
    sdf = (
        sdf.tumbling_window(timedelta(days=1), grace_ms=timedelta(days=7), name="learner_day")
        .reduce(reducer=_counts, initializer=initializer)
        .current()
    )
    sdf = sdf.apply(to_row)
    sdf.sink(ClickHouseSink(store))
    return app


def main(argv: list[str] | None = None) -> int:
    args = peer_arguments(__doc__.splitlines()[0], "of the topics it writes", argv)
    from pathlib import Path

    store = open_store(None, Path(args.chdb))
    group = f"quix-peer-{time.time_ns()}"
    app = build(args.bootstrap, args.topic, args.partitions, args.state_dir, store, group)
    result: dict[str, Any] = {"complete": False}

    def watch() -> None:
        if wait_until_counted(store, args.expect, args.timeout):
            result.update(complete=True, done_at=time.time())
        app.stop()

    threading.Thread(target=watch, daemon=True).start()
    app.run()
    result["totals"] = store.query(TOTALS_SQL)[0]
    store.close()
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
