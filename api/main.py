"""The API process: the HTTP API, and with the embedded store also the
sink and the jobs (exports, sweeps, purges).

chdb allows one process per data path, so this process is the only one that
opens the embedded store; the CLI reaches it over HTTP while it runs. With
a ClickHouse server, API replicas can leave the sink and the jobs to
processes of their own (``API_RUNS_SINK`` / ``API_RUNS_JOBS``).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys

import uvicorn

from api.app import create_app
from api.audit.chain import use_writer
from api.context import AppContext
from core.logs import setup_logging
from core.processes import process_name
from core.settings import get_settings

log = logging.getLogger("skillstream.api")


def main() -> None:
    settings = get_settings()
    setup_logging("api", settings)
    if not settings.kafka_bootstrap:
        sys.exit("KAFKA_BOOTSTRAP must be set for the API process (skillstream up sets it)")
    if not settings.api_port:
        sys.exit("API_PORT must be set for the API process (skillstream up picks one)")
    if not settings.clickhouse_url and not (settings.api_runs_sink and settings.api_runs_jobs):
        sys.exit("API_RUNS_SINK/API_RUNS_JOBS=false need CLICKHOUSE_URL: with the embedded "
                 "store only the API process may open it")  # fmt: skip
    if settings.clickhouse_url:  # replicas share the server: each its own audit chains
        use_writer(process_name("api"))
    ctx = AppContext.for_process(settings)
    store = ctx.store
    # With the embedded store this process owns it, so it runs the sink and
    # the jobs that touch it; with a server they may run as processes of
    # their own (`skillstream sink`, `skillstream jobs`).
    if settings.api_runs_sink:
        ctx.start_sink()
    ctx.start_lag_monitor()
    if settings.api_runs_jobs:
        ctx.start_jobs()
    app = create_app(ctx)
    url = f"http://{settings.api_host}:{settings.api_port}"
    settings.api_file.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        log_config=None,  # uvicorn's loggers go through ours (one format)
        lifespan="on",
    )
    server = uvicorn.Server(config)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    # Start-up objects live as long as the process: frozen, full collections
    # do not walk them (58-69 ms pauses of every request at the front door,
    # docs/benchmarks.md). Garbage is collected first, not frozen with them.
    gc.collect()
    gc.freeze()
    try:
        server.run()
    finally:
        try:
            if json.loads(settings.api_file.read_text()).get("pid") == os.getpid():
                settings.api_file.unlink()
        except (OSError, ValueError):
            pass
        ctx.close()
        store.close()


if __name__ == "__main__":
    main()
