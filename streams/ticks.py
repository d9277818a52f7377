"""Recompute ticks, one per partition on ``control.recompute`` (the
crontab, `skillstream recompute`, an import's touched days). Free of Faust,
so the CLI and the API request them without loading the worker's stack."""

from __future__ import annotations

import json
import time
from datetime import date

from confluent_kafka import Producer

from core.settings import Settings


def request_recompute(
    bootstrap: str, settings: Settings, day: date, until: date | None = None
) -> int:
    """Produce one recompute tick per partition (used by the crontab and the
    CLI); ``until``: every day from ``day`` through it (an import's days)."""
    from confluent_kafka.admin import AdminClient

    name = settings.topic("control.recompute")
    md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(name, timeout=10)
    partitions = list(md.topics[name].partitions)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    tick = {"date": day.isoformat(), "requested_at": time.time()}
    if until is not None and until > day:
        tick["until"] = until.isoformat()
    body = json.dumps(tick).encode()
    for part in partitions:
        p.produce(name, body, b"recompute", partition=part)
    if p.flush(30) != 0:
        raise RuntimeError("recompute ticks not acknowledged by Kafka")
    return len(partitions)
