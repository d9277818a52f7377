"""The worker's agents, one per input topic, and its timers:

  events.raw          the raw pipeline (streams/pipelines.py)
  events.import       the imported events' pipeline, after live work (streams/priority.py)
  events.attributed   the attributed pipeline (anonymous events, now a user's)
  identity.links      remember the link; forward the visitor's pending events
  control.recompute   nightly/on-demand score snapshot + dedupe sweep (streams/recompute.py)
  control.erasure     a learner's (or a visitor's) erasure (streams/erasure.py)

Every agent but the ticks' applies its partitions strictly in order, acking
by hand (streams/faust/ordering.py): the idempotent state depends on it.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import faust

from core.settings import Settings
from schemas.codec import codec_for
from streams.erasure import Eraser
from streams.faust.checkpoint import Checkpoint
from streams.faust.ordering import InOrder
from streams.outputs import Outputs
from streams.pipeline import Item, Outcome
from streams.pipelines import pipelines, prefetch, until_done
from streams.priority import LiveFirst
from streams.rebalance import follow_rebalances
from streams.recompute import apply_tick, request_yesterday_if_first
from streams.steps.decode import alone, decode_record
from streams.topology import Tables, Topics

STALL_CHECK_S = 2.5


def declare_agents(app: faust.App, settings: Settings, bootstrap: str, topics: Topics,
                   tables: Tables, out: Outputs, checkpoint: Checkpoint) -> None:  # fmt: skip
    raw_pipeline, attributed_pipeline, import_pipeline = pipelines(settings, tables, out)
    live_first = LiveFirst()
    in_order = InOrder(app, bootstrap, checkpoint)
    follow_rebalances(app, in_order, checkpoint)
    watched = {t.get_topic_name() for t in (topics.raw, topics.attributed, topics.links,
                                            topics.erasure, topics.imports)}  # fmt: skip

    @app.timer(interval=STALL_CHECK_S)
    async def watch_progress() -> None:
        await in_order.watch(watched)

    codec = codec_for(settings.schema_registry_url, settings.topic("events.raw"))

    async def apply_raw(event, pipeline=raw_pipeline, imported: bool = False) -> None:
        msg = event.message
        record = Item(msg.topic, msg.partition, msg.offset, msg.key, msg.value, _headers(msg))
        items = decode_record(codec, record)
        if isinstance(items, Outcome):
            await out.dead_letter(items, msg.key, msg.value)
            return
        if not imported:
            live_first.live()
        prefetch(tables, msg.partition, items)
        for item in items:  # a batch's events in order, each on its own
            if imported:
                await live_first.give_way()
            outcome = await until_done(pipeline, item)
            if outcome.failed_step:
                await out.dead_letter(outcome, *alone(codec, item))
        out.send_clean(msg.topic)

    async def apply_imported(event) -> None:
        await apply_raw(event, import_pipeline, imported=True)

    async def apply_attributed(event) -> None:
        msg = event.message
        item = Item(msg.topic, msg.partition, msg.offset, msg.key, b"", _headers(msg))
        item.record = dict(event.value)
        outcome = await until_done(attributed_pipeline, item)
        if outcome.failed_step:
            await out.dead_letter(outcome, msg.key, msg.value)
        out.send_clean(msg.topic)

    @app.agent(topics.raw)
    async def process_raw(stream):
        await in_order.consume(stream, apply_raw)

    @app.agent(topics.imports)
    async def process_imports(stream):
        await in_order.consume(stream, apply_imported)

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
            await apply_tick(event.value, event.message.partition, out, tables.seen, settings)

    @app.crontab(settings.recompute_cron, timezone=UTC)
    async def nightly_recompute() -> None:
        request_yesterday_if_first(app, topics.ticks, bootstrap, settings)


def _headers(msg: Any) -> list[tuple[str, bytes]]:
    h = msg.headers or []
    return list(h.items()) if isinstance(h, dict) else list(h)
