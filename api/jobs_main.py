"""`skillstream jobs`: exports, notifications, the link sweep, purges and
the erasure second pass as a process of their own, for a ClickHouse server
(``CLICKHOUSE_URL``); with the embedded store the API process runs them.
Any number may run: each job that must run once takes a lease (a
partition of ``control.jobs``, api/leases.py), so two runners never do the
same work. Its audit rows go to chains of its own (api/audit/chain.py)."""

from __future__ import annotations

import logging
import sys

from api.audit.chain import use_writer
from api.context import AppContext
from api.leases import Leases
from core.logs import setup_logging
from core.processes import process_name, serve_until_signalled, server_mode_only
from core.settings import Settings, get_settings
from core.topics import ensure_topics

log = logging.getLogger("skillstream.jobs")


def job_leases(settings: Settings, bootstrap: str, member: str | None = None) -> Leases:
    ensure_topics(bootstrap, settings, {"control.jobs": {}})
    return Leases(
        bootstrap,
        settings.topic("control.jobs"),
        f"{settings.topic_prefix}-jobs",
        member or process_name("jobs"),
    ).start()


def main() -> int:
    settings = get_settings()
    setup_logging("jobs", settings)
    server_mode_only(settings, "jobs")
    use_writer(process_name("jobs"))
    ctx = AppContext.for_process(settings)
    store = ctx.store
    leases = job_leases(settings, settings.kafka_bootstrap)
    scheduler = ctx.start_jobs(leases)
    try:
        code = serve_until_signalled(lambda: scheduler.alive() and leases.alive())
    finally:
        ctx.close()
        store.close()
    if code:
        log.error("a job thread stopped: exiting so the supervisor restarts the process")
    return code


if __name__ == "__main__":
    sys.exit(main())
