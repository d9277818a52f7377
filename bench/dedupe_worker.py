"""The worker's dedupe state alone, for the memory scenario.

A Faust worker built like ``streams.worker`` (same app factory: RocksDB
tables with changelogs, same settings) whose one agent runs the real
``dedupe_step`` over a topic of ids. The full pipeline costs five records
per event, which would turn 10M ids into hours; the state under test is the
same table.

    python -m bench.dedupe_worker   (KAFKA_BOOTSTRAP, TOPIC_PREFIX, SKILLSTREAM_RUN_DIR)
"""

from __future__ import annotations

import sys

from mode import Worker

from core.settings import get_settings
from streams.faust.app import create_app
from streams.pipeline import Item
from streams.steps.dedupe import dedupe_step

IDS_TOPIC = "bench.ids"


def main() -> int:
    settings = get_settings()
    bootstrap = settings.kafka_bootstrap or ""
    app = create_app(settings, bootstrap, f"{settings.topic_prefix}-dedupe")
    ids = app.topic(
        settings.topic(IDS_TOPIC),
        key_serializer="raw",
        value_serializer="json",
        partitions=settings.topic_partitions,
    )
    seen = app.Table("dedupe", default=None, partitions=settings.topic_partitions, key_type=str)
    step = dedupe_step(seen)

    @app.agent(ids)
    async def process(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            msg = event.message
            item = Item(msg.topic, msg.partition, msg.offset, msg.key, b"")
            item.record = dict(event.value)
            await step.run(item)

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
