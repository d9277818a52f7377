"""The stream worker process: ``python -m streams.worker``.

It owns the Faust tables (RocksDB) and never opens ClickHouse: the sink in
the API process writes there.
"""

from __future__ import annotations

import logging
import sys

import faust
from mode import Worker

from ops.settings import Settings, get_settings
from schemas.codec import codec_for
from streams.app import create_app
from streams.pipeline import Item, Pipeline, dead_letter_headers
from streams.steps.decode import decode_step


def build(settings: Settings, bootstrap: str, app_id: str = "skillstream-worker") -> faust.App:
    app = create_app(settings, bootstrap, app_id)
    raw_name = settings.topic("events.raw")
    raw = app.topic(raw_name, value_serializer="raw", key_serializer="raw")
    dead = app.topic(
        settings.topic("events.dead_letter"), value_serializer="raw", key_serializer="raw"
    )
    pipeline = Pipeline([decode_step(codec_for(settings.schema_registry_url, raw_name))])

    @app.agent(raw)
    async def process_raw(stream):
        async for event in stream.events():
            msg = event.message
            item = Item(
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                key=msg.key,
                value=msg.value,
                headers=list((msg.headers or {}).items())
                if isinstance(msg.headers, dict)
                else list(msg.headers or []),
            )
            outcome = await pipeline.process(item)
            if outcome.failed_step:
                await dead.send(key=msg.key, value=msg.value, headers=dead_letter_headers(outcome))

    return app


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    settings = get_settings()
    if not settings.kafka_bootstrap:
        sys.exit("KAFKA_BOOTSTRAP must be set for the worker (skillstream up sets it)")
    app = build(settings, settings.kafka_bootstrap)
    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
