"""enrich: derive what downstream needs from the record.

Adds the event day, the engagement component the event feeds, the row
version, and whether it is within the allowed lateness of its partition's
event-time watermark (a too-late event is kept as a raw event but changes
no aggregate: its day's window has closed).
"""

from __future__ import annotations

from collections.abc import MutableMapping

from prometheus_client import Counter

from schemas import dictionary
from streams.pipeline import Item, Step
from streams.records import DAY_MS, day_of

WATERMARK_STEP_MS = 60_000

TOO_LATE = Counter(
    "skillstream_stream_too_late_total", "Events past the allowed lateness (no aggregate change)"
)


def enrich_step(watermarks: MutableMapping[str, int], allowed_lateness_days: int) -> Step:
    async def run(item: Item) -> Item:
        rec = item.record
        ts = rec["event_timestamp"]
        wm_key = f"p{item.partition}"
        watermark = watermarks.get(wm_key) or 0
        if rec.get("imported"):
            # History (api/imports/; forwarded later, too) counts whatever its
            # age and leaves the live watermark alone: an import has its own
            # age bound, and the days it touched are recomputed at its end.
            watermark = ts
        elif ts > watermark + WATERMARK_STEP_MS:
            # Advance in steps: every write is a changelog record, and a
            # minute is nothing against a lateness measured in days.
            watermarks[wm_key] = ts
            watermark = ts
        rec["event_day"] = day_of(ts)
        spec = dictionary.BY_NAME.get(rec["event_name"])
        rec["component"] = spec.engagement_component if spec else None
        rec["countable"] = bool(rec.get("learner_id")) and (
            ts >= watermark - allowed_lateness_days * DAY_MS
        )
        if rec.get("learner_id") and not rec["countable"]:
            TOO_LATE.inc()
        # An anonymous-only event attributed to a learner replaces its
        # unattributed row, however it got there: forwarded when the link
        # arrived, or attributed at once when replayed after a crash (then
        # both rows exist in events.clean, and an equal version would let
        # the sink's insert order decide).
        anonymous_only = not rec.get("user_id")
        rec["version"] = 2 if anonymous_only and rec.get("learner_id") else 1
        return item

    return Step("enrich", run)
