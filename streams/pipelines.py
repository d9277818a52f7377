"""The worker's two pipelines of steps, and the retry that runs a record
through one until it is done.

  events.raw          (decode: a record → its events) normalise → dedupe → identity →
                      opt-out → enrich → emit, per event
  events.attributed   dedupe → opt-out → enrich → emit   (anonymous events, now a user's)
  events.import       the raw steps, for history (api/imports/): the same dedupe table
                      (an event imported and also sent live counts once), counted
                      whatever its age
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from core.settings import Settings
from streams.faust.app import TRANSIENT_ERRORS
from streams.outputs import Outputs
from streams.pipeline import Item, Outcome, Pipeline, Step
from streams.records import normalise
from streams.steps.dedupe import dedupe_key, dedupe_step, import_position
from streams.steps.enrich import enrich_step
from streams.steps.identity import identity_step
from streams.steps.optout import optout_step
from streams.topology import Tables

log = logging.getLogger("skillstream.worker")


def pipelines(
    settings: Settings, tables: Tables, out: Outputs
) -> tuple[Pipeline, Pipeline, Pipeline]:
    """The raw events' pipeline, the attributed (forwarded) events' one and
    the imported events' one."""
    emit = Step("emit", out.emit)
    enrich = enrich_step(tables.watermarks, settings.allowed_lateness_days)
    optout = optout_step(tables.optout, out.emit_optout)
    identity = identity_step(
        tables.links, tables.links_sent, tables.pending, out.send_link, out.forward
    )
    raw = Pipeline(
        transient=TRANSIENT_ERRORS,
        steps=[
            Step("normalise", _normalise),
            dedupe_step(tables.seen),
            identity,
            optout,
            enrich,
            emit,
        ],
    )
    imported = Pipeline(
        transient=TRANSIENT_ERRORS,
        steps=[
            Step("normalise", _normalise_imported),
            dedupe_step(tables.seen, import_position),
            identity,
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
        transient=TRANSIENT_ERRORS,
    )
    return raw, attributed, imported


def prefetch(tables: Tables, partition: int, items: list[Item]) -> None:
    """The state a batch's events will ask for, read at once: every event
    id is new to dedupe but one, so one RocksDB multi-get instead of a
    lookup each (the other steps' keys repeat per learner: cached)."""
    if len(items) > 1:
        tables.seen.prefetch(partition, (dedupe_key(i.record) for i in items))


async def until_done(pipeline: Pipeline, item: Item) -> Outcome:
    """Process one record, retrying it on transient errors with backoff:
    every step is idempotent for the same source offset."""
    for attempt in itertools.count():
        try:
            return await pipeline.process(item)
        except TRANSIENT_ERRORS as exc:
            log.warning("%s[%d]@%d: %s; retrying", item.topic, item.partition, item.offset, exc)
            await asyncio.sleep(min(5.0, 0.1 * 2**attempt))
    raise AssertionError("unreachable")


async def _normalise(item: Item) -> Item:
    item.record = normalise(item.record)
    return item


async def _normalise_imported(item: Item) -> Item:
    item.record = normalise(item.record)
    item.record["imported"] = True  # kept when forwarded: enrich counts it whatever its age
    return item
