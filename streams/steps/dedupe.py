"""dedupe: drop an event whose (tenant, client_event_id) was seen in the window.

State: a RocksDB table ``key -> event day``; the nightly sweep deletes keys
older than the window (DEDUPE_WINDOW_DAYS), so state stays bounded.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from prometheus_client import Counter

from streams.pipeline import Item, Step
from streams.records import day_of

DUPLICATES = Counter("skillstream_stream_duplicates_total", "Events dropped as duplicates")


def dedupe_key(rec: dict) -> str:
    return f"{rec['tenant_id']}|{rec['client_event_id']}"


def dedupe_step(seen: MutableMapping[str, int]) -> Step:
    async def run(item: Item) -> Item | None:
        rec = item.record
        key = dedupe_key(rec)
        if seen.get(key) is not None:
            DUPLICATES.inc()
            return None
        seen[key] = day_of(rec["event_timestamp"])
        return item

    return Step("dedupe", run)
