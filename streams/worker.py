"""The stream worker process: ``python -m streams.worker``.

Where things are (all topics share one partition count, so Faust
co-partitions them and every table key is only ever touched by one
partition):

  streams/topology.py    its topics and tables
  streams/outputs.py     what it writes besides the tables' changelogs
  streams/pipelines.py   the raw and the attributed events' steps
  streams/agents.py      one agent per input topic, and its timers
  streams/rebalance.py   what a moved partition keeps and forgets
  streams/recompute.py   the nightly score snapshot and dedupe sweep
  streams/recovery.py    what is settled before it joins its group
  streams/faust/         the Faust adaptation (see its docstring)

Several workers share the partitions through the consumer group, each with
its own WORKER_ID and state directory (docs/streams.md, Scaling out).

Delivery is at least once (Faust flushes every send before it commits an
offset); every state update is idempotent per source offset and every
output converges per key, so each event counts exactly once. The worker
never opens ClickHouse; the sink in the API process writes there.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

import faust

from core.logs import setup_logging
from core.settings import Settings, get_settings
from core.topics import existing_partitions
from streams.agents import declare_agents
from streams.faust.app import create_app, run
from streams.faust.checkpoint import Checkpoint
from streams.outputs import Outputs
from streams.recovery import (
    adopt_unnamed_state,
    discard_state_after_crash,
    ensure_changelogs,
    mark_clean_stop,
)
from streams.topology import Tables, Topics

log = logging.getLogger("skillstream.worker")


def build(settings: Settings, bootstrap: str, app_id: str | None = None) -> faust.App:
    # The app id names the consumer group and the changelog topics: derive it
    # from the topic prefix so two stacks on one cluster never share state.
    app_id = app_id or f"{settings.topic_prefix}-worker"
    app = create_app(settings, bootstrap, app_id)
    topics = Topics.declare(app, settings)
    tables = Tables.declare(app, settings, bootstrap, app_id, topics)
    out = Outputs(app, topics, tables)
    # Faust's commit runs it (streams/faust/fixes.py): outputs first, whose
    # scores go into the learner-day rows the tables then flush.
    app.checkpoint = Checkpoint()
    for t in (out, *(getattr(tables, f.name) for f in dataclasses.fields(tables))):
        app.checkpoint.add(t)
    declare_agents(app, settings, bootstrap, topics, tables, out, app.checkpoint)
    return app


def main() -> None:
    settings = get_settings()
    setup_logging("worker", settings, logging.WARNING)
    if not settings.kafka_bootstrap:
        sys.exit("KAFKA_BOOTSTRAP must be set for the worker (skillstream up sets it)")
    if problem := settings.dedupe_window_problem():
        sys.exit(f"worker not started: {problem}")
    have = existing_partitions(settings.kafka_bootstrap, settings)
    if have is not None and have != settings.topic_partitions:
        sys.exit(
            f"worker not started: the topics have {have} partitions, TOPIC_PARTITIONS is "
            f"{settings.topic_partitions}: set it to {have}, or move to new topics "
            "(docs/streams.md, Partitions)"
        )
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    adopt_unnamed_state(settings)
    if discard_state_after_crash(settings.state_dir):
        log.warning("previous run did not stop cleanly: restoring tables from changelogs")
    app = build(settings, settings.kafka_bootstrap)
    ensure_changelogs(app, settings.kafka_bootstrap, settings)
    code = 1
    try:
        run(app)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    if code == 0:
        mark_clean_stop(settings.state_dir)
    sys.exit(code)


if __name__ == "__main__":
    main()
