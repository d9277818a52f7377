"""The nightly (or on-demand) recompute: one tick per partition on
``control.recompute``, and what the owner of a partition does with its
tick: a daily score for every learner active in the window, and a sweep of
dedupe ids older than the dedupe window."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta

import faust
from faust.types import TP

from core.settings import Settings
from streams.faust.state import StateTable
from streams.outputs import Outputs
from streams.ticks import request_recompute

log = logging.getLogger("skillstream.worker")


def request_yesterday_if_first(app: faust.App, ticks: faust.TopicT, bootstrap: str,
                               settings: Settings) -> None:  # fmt: skip
    """The crontab's work. Every worker runs it; one sends the ticks: whoever
    owns the first partition of the ticks topic. Each tick is then applied
    by the owner of its partition."""
    if TP(ticks.get_topic_name(), 0) not in app.consumer.assignment():
        return
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    request_recompute(bootstrap, settings, yesterday)


async def apply_tick(tick: dict, partition: int, out: Outputs, seen: StateTable,
                     settings: Settings) -> None:  # fmt: skip
    day = date.fromisoformat(tick["date"]).toordinal()
    last = date.fromisoformat(tick["until"]).toordinal() if tick.get("until") else day
    n = await out.recompute(partition, day, last)
    # by receive day, relative to now (not to the tick's date, which
    # `recompute --date` may set anywhere)
    today = datetime.now(UTC).date().toordinal()
    swept = sweep_dedupe(seen, partition, today - settings.dedupe_window_days)
    span = f"{tick['date']}..{tick['until']}" if tick.get("until") else tick["date"]
    log.warning("recompute %s p%s: %d scores, %d ids swept", span, partition, n, swept)


def sweep_dedupe(seen: StateTable, partition: int, oldest_day: int) -> int:
    """Forget ids older than the window. Only this partition's keys: a delete
    is logged to the changelog partition of the event being processed."""
    expired = []
    for raw_key, raw_value in seen.stored_in(partition):
        try:
            day = int(json.loads(raw_value)[0])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        if day < oldest_day:
            expired.append(raw_key.decode() if isinstance(raw_key, bytes) else raw_key)
    for key in expired:
        key = key.strip('"')
        if key in seen:
            del seen[key]
    return len(expired)
