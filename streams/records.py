"""The clean event record: the decoded Avro envelope in a JSON-safe shape.

Derived topics carry JSON (documented in docs/sink.md); times
are epoch milliseconds, properties a plain object.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import orjson

from schemas import dictionary

DAY_MS = 86_400_000


def to_ms(value: datetime | int) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def day_of(ms: int) -> int:
    """Date ordinal (UTC) of an epoch-ms timestamp."""
    return datetime.fromtimestamp(ms / 1000, UTC).date().toordinal()


def week_of(day: int) -> int:
    """Ordinal of the Monday of the ISO week containing ``day``."""
    return day - date.fromordinal(day).weekday()


@lru_cache(maxsize=4096)
def iso_day(day: int) -> str:
    # every learner-day key, 22 of them per score: a hot path (py-spy)
    return date.fromordinal(day).isoformat()


def normalise(avro: dict[str, Any]) -> dict[str, Any]:
    rec = dict(avro)
    rec["event_timestamp"] = to_ms(rec["event_timestamp"])
    rec["received_at"] = to_ms(rec["received_at"])
    props = rec.get("properties")
    if isinstance(props, tuple):
        props = props[1]
    rec["properties"] = {
        k: (to_ms(v) if isinstance(v, datetime) else v) for k, v in (props or {}).items()
    }
    spec = dictionary.BY_NAME.get(rec["event_name"])
    rec["essential"] = bool(spec and spec.essential)
    rec["retention_days"] = (
        spec.retention_days if spec else dictionary.DEFAULT_RETENTION_YEARS * 365
    )
    rec["learner_id"] = rec.get("user_id")
    return rec


# When the front door received the event behind a record: the raw record's
# own timestamp (set to its receipt), carried as a header on everything the
# worker derives from it, so the lag of any stage is measured from receipt
# (api/lag.py) and the freshness watermark is exact.
ORIGIN_HEADER = "skillstream-origin"


def origin_ms(headers: Any, timestamp_ms: int) -> int:
    for name, value in (headers.items() if isinstance(headers, Mapping) else headers) or ():
        if name == ORIGIN_HEADER:
            return int(value)
    return timestamp_ms


_last: tuple[object, list[tuple[str, bytes]]] = (None, [])


def origin_headers() -> list[tuple[str, bytes]]:
    """The origin header for what the record being processed now derives.
    One event derives several records: the header is built once per event
    and the same list shared (never mutated) by all of them."""
    global _last
    import faust  # only in the processes that run it

    event = faust.current_event()
    if event is None:
        return []
    if _last[0] is event:
        return _last[1]
    msg = event.message
    headers = [(ORIGIN_HEADER, str(origin_ms(msg.headers, int(msg.timestamp * 1000))).encode())]
    _last = (event, headers)
    return headers


# a clean record's bound: well under Kafka's default message.max.bytes (1 MB)
CLEAN_RECORD_BYTES = 512 * 1024


def clean_records(rows: list[dict], limit: int = CLEAN_RECORD_BYTES) -> list[bytes]:
    """``rows`` as JSON arrays of at most ``limit`` bytes (a single row
    over it alone), in order: one array for a live request's events."""
    data = orjson.dumps(rows)
    if len(data) <= limit or len(rows) == 1:
        return [data]
    mid = len(rows) // 2
    return clean_records(rows[:mid], limit) + clean_records(rows[mid:], limit)
