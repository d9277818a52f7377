"""The second stream peer: the same learner-day aggregates, in Pathway.

What a Python team would pick today for this job: a Rust dataflow engine
(Pathway) with a relational Python API, reading our raw topic and writing
our ClickHouse ``learner_daily`` table, counting what the Quix Streams peer
counts (``bench/peers/quix_app.py``):

  raw (Avro batch records as the front door writes them; Kafka connector, raw bytes)
    → decode: our codec in a Python UDF, one ``decode_many`` per record, flatten
    → dedupe: group-by (tenant, client_event_id)
    → identity: each visitor's link (anonymous_id → user_id, from identified
      events), joined with the anonymous events: an anonymous event counts
      for its visitor's learner once the visitor signs in, never before
    → per-day counts: group-by (tenant, learner, UTC day of the event time)
    → subscribe: every closed time's changed rows → learner_daily through
      our store interface (a separate embedded ClickHouse path)

Persistence is on (the filesystem backend under the run dir): Pathway
keeps the input it has read and the reader's offsets there, and replays
them on a restart; a snapshot written after the table is complete is not
waited for, as the other pipelines' last commit is not. Late events
count in their own day, as in the Quix peer (its 7-day grace covers the
generator's five days). Pathway's operators keep every group's state, so a
visitor's events wait for its link without a bound (the Quix peer holds
at most 500 per visitor; the generator never comes near it).

It runs in its own virtualenv (Pathway is about 1.5 GB installed: not part
of ``make install``; ``bench/peers/venv.py`` sets it up) and its own
process, and reports when the table holds every expected event, so the
timing includes start-up like the others'.

    python -m bench.peers.pathway_app --bootstrap B --topic T --chdb DIR \
        --state-dir DIR --expect N [--timeout S]
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pathway as pw

from bench.peers.learner_daily import TOTALS_SQL, peer_arguments, wait_until_counted
from schemas.codec import SingleObjectCodec
from schemas.dictionary import BY_NAME
from sinks.store import Store, open_store
from streams.records import day_of, normalise

# Counted per event by the UDF, summed per learner-day by the group-by.
COMPONENTS = ("sign_ins", "live_sessions", "phase_advances", "submissions", "lessons_completed")
SUMMED = (*COMPONENTS, "active_minutes", "completions")
FIELDS = ("tenant", "event_id", "user", "visitor", "day", "program", "cohort", *SUMMED)
EVENT_TYPE = tuple[str, str, str, str, int, str, str, int, int, int, int, int, int, int]

CODEC = SingleObjectCodec()


def _fields(rec: dict) -> tuple:
    """One event as the relational part needs it ("" for a missing id)."""
    spec = BY_NAME.get(rec["event_name"])
    component = spec.engagement_component if spec else None
    minutes = rec["properties"].get("duration_minutes")
    return (
        rec["tenant_id"],
        rec["client_event_id"],
        rec.get("user_id") or "",
        rec.get("anonymous_id") or "",
        day_of(rec["event_timestamp"]),
        rec.get("program_id") or "",
        rec.get("cohort_id") or "",
        *(int(component == c) for c in COMPONENTS),
        minutes if isinstance(minutes, int) and minutes > 0 else 0,
        int(rec["event_name"] == "program_completed"),
    )


@pw.udf(deterministic=True)
def decode(data: bytes) -> list[EVENT_TYPE]:
    return [_fields(normalise(rec)) for rec in CODEC.decode_many(data)]


def events(raw: pw.Table) -> pw.Table:
    exploded = raw.select(ev=decode(pw.this.data)).flatten(pw.this.ev)
    return exploded.select(**{f: pw.this.ev[i] for i, f in enumerate(FIELDS)})


def learner_days(evs: pw.Table) -> pw.Table:
    rest = [f for f in FIELDS if f not in ("tenant", "event_id")]
    unique = evs.groupby(pw.this.tenant, pw.this.event_id).reduce(
        pw.this.tenant, **{f: pw.reducers.any(pw.this[f]) for f in rest}
    )
    identified = unique.filter(pw.this.user != "")
    links = (
        identified.filter(pw.this.visitor != "")
        .groupby(pw.this.tenant, pw.this.visitor)
        .reduce(pw.this.tenant, pw.this.visitor, learner=pw.reducers.min(pw.this.user))
    )
    anonymous = unique.filter(pw.this.user == "")
    kept = [f for f in rest if f != "user"]
    attributed = anonymous.join(
        links, anonymous.tenant == links.tenant, anonymous.visitor == links.visitor
    ).select(anonymous.tenant, *[anonymous[f] for f in kept], learner=links.learner)
    counted = identified.select(pw.this.tenant, *[pw.this[f] for f in kept], learner=pw.this.user)
    counted = counted.concat_reindex(attributed)
    return counted.groupby(pw.this.tenant, pw.this.learner, pw.this.day).reduce(
        pw.this.tenant,
        pw.this.learner,
        pw.this.day,
        events=pw.reducers.count(),
        program=pw.reducers.max(pw.this.program),
        cohort=pw.reducers.max(pw.this.cohort),
        **{c: pw.reducers.sum(pw.this[c]) for c in SUMMED},
    )


class LearnerDailySink:
    """Collects a time's changed rows and writes them when Pathway closes
    the time: one insert per time, the time as the row version (it only
    grows), so ``FINAL`` keeps each learner-day's newest counts."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pending: dict[tuple, dict] = {}

    def on_change(self, key: Any, row: dict, time: int, is_addition: bool) -> None:
        if is_addition:  # an update is a deletion and an addition at the same time
            self.pending[(row["tenant"], row["learner"], row["day"])] = row

    def on_time_end(self, time: int) -> None:
        if not self.pending:
            return
        rows = [_row(r, time) for r in self.pending.values()]
        self.pending = {}
        self.store.insert("learner_daily", rows, f"pathway:{time}")


def _row(r: dict, version: int) -> dict:
    return {
        "tenant_id": r["tenant"],
        "user_id": r["learner"],
        "day": date.fromordinal(r["day"]).isoformat(),
        "program_id": r["program"] or None,
        "cohort_id": r["cohort"] or None,
        "events": r["events"],
        **{c: r[c] for c in SUMMED},
        "version": version,
        "updated_at": datetime.now(UTC),
    }


def build(bootstrap: str, topic: str, group: str, store: Store) -> None:
    raw = pw.io.kafka.read(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": "6000",
        },
        topic=topic,
        format="raw",
        name="raw",  # the persisted reader's offsets and snapshot
    )
    sink = LearnerDailySink(store)
    pw.io.subscribe(
        learner_days(events(raw)), on_change=sink.on_change, on_time_end=sink.on_time_end
    )


def main(argv: list[str] | None = None) -> int:
    args = peer_arguments(__doc__.splitlines()[0], "unused: no topic of its own", argv)
    store = open_store(None, Path(args.chdb))
    build(args.bootstrap, args.topic, f"pathway-peer-{time.time_ns()}", store)
    result: dict[str, Any] = {"complete": False}

    def watch() -> None:
        if wait_until_counted(store, args.expect, args.timeout):
            result.update(complete=True, done_at=time.time())
        # pw.run has no stop call: the measurement is over, report and leave
        result["totals"] = store.query(TOTALS_SQL)[0]
        print(json.dumps(result, default=str), flush=True)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    pw.run(
        persistence_config=pw.persistence.Config(pw.persistence.Backend.filesystem(args.state_dir)),
        monitoring_level=pw.MonitoringLevel.NONE,
    )
    return 1  # watch() ends the process


if __name__ == "__main__":
    sys.exit(main())
