"""dedupe: drop an event whose (tenant, client_event_id) was seen in the window.

State: a RocksDB table ``key -> [receive day, source offset]``; the nightly
sweep deletes keys received longer ago than the window (DEDUPE_WINDOW_DAYS),
so state stays bounded. By receive day, not event day: a retry comes at
most the late-arrival bound after its event, hence after its first receipt,
and the worker refuses a window shorter than that bound
(``Settings.dedupe_window_problem``). The offset tells a duplicate (same id, another offset) from
the same record delivered again after a crash (same offset), which must go
on: its earlier processing may not have been committed.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

from prometheus_client import Counter

from streams.pipeline import Item, Step
from streams.records import day_of

DUPLICATES = Counter("skillstream_stream_duplicates_total", "Events dropped as duplicates")


def dedupe_key(rec: dict) -> str:
    return f"{rec['tenant_id']}|{rec['client_event_id']}"


def _position(item: Item) -> float | str:
    return item.position


def import_position(item: Item) -> str:
    """An imported event's place, told apart from a live one's: both topics
    share the table (an event imported and also sent live counts once), and
    their offsets are counted apart."""
    return f"i{item.position}"


def dedupe_step(
    seen: MutableMapping[str, int], mark: Callable[[Item], float | str] = _position
) -> Step:
    async def run(item: Item) -> Item | None:
        rec = item.record
        key = dedupe_key(rec)
        first = seen.get(key)
        here = mark(item)
        if first is not None:
            if first[1] == here:
                return item  # redelivery of the first occurrence, not a duplicate
            DUPLICATES.inc()
            return None
        seen[key] = [day_of(rec["received_at"]), here]
        return item

    return Step("dedupe", run)
