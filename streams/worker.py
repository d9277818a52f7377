"""The stream worker process: ``python -m streams.worker``.

It owns the Faust tables (RocksDB) and never opens ClickHouse: the sink in
the API process writes there.
"""

from __future__ import annotations

import logging
import sys

from mode import Worker
from prometheus_client import Counter

from ops.settings import get_settings
from streams.app import create_app

EVENTS_SEEN = Counter("skillstream_worker_events_total", "Raw events read by the worker")


def build():
    settings = get_settings()
    if not settings.kafka_bootstrap:
        sys.exit("KAFKA_BOOTSTRAP must be set for the worker (skillstream up sets it)")
    app = create_app(settings, settings.kafka_bootstrap)
    raw = app.topic(settings.topic("events.raw"), value_serializer="raw", key_serializer="raw")

    @app.agent(raw)
    async def count_raw(stream):  # the processing pipeline replaces this (issue 4)
        async for _ in stream:
            EVENTS_SEEN.inc()

    return app


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    app = build()
    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
