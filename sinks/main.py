"""`skillstream sink`: the sink as a process of its own, for a ClickHouse
server (``CLICKHOUSE_URL``); with the embedded store the API process runs
it. Several may run in one consumer group: each round's plan, tokens and
stored offsets are per topic-partition, so a partition that moves is
resumed from what ClickHouse holds (sinks/sink.py)."""

from __future__ import annotations

import logging
import sys

from core.logs import setup_logging
from core.processes import serve_until_signalled, server_mode_only
from core.settings import get_settings
from sinks.sink import Sink
from sinks.store import open_store

log = logging.getLogger("skillstream.sink")


def main() -> int:
    settings = get_settings()
    setup_logging("sink", settings)
    server_mode_only(settings, "sink")
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    store = open_store(settings.clickhouse_url, settings.chdb_path)
    sink = Sink(settings, store, settings.kafka_bootstrap)
    sink.start()
    try:
        code = serve_until_signalled(sink.alive)
    finally:
        sink.stop()
        store.close()
    if code:
        log.error("sink thread stopped: exiting so the supervisor restarts the process")
    return code


if __name__ == "__main__":
    sys.exit(main())
