"""Pipeline steps on their own, where a case is hard to reach end to end."""

from __future__ import annotations

import asyncio
import time

from streams.pipeline import Item
from streams.steps.enrich import enrich_step


def _enriched(**rec) -> dict:
    now = int(time.time() * 1000)
    base = {"event_name": "lesson_completed", "event_timestamp": now, "user_id": None}
    item = Item("t", 0, 1, b"", b"", [])
    item.record = {**base, **rec}
    return asyncio.run(enrich_step({}, 7).run(item)).record


def test_an_attributed_anonymous_event_always_replaces_its_unattributed_row():
    unattributed = _enriched(learner_id=None)
    # forwarded when the link arrived, or attributed at once when the raw
    # event is replayed after a crash with the link already known
    forwarded = _enriched(learner_id="u1", attributed_later=True)
    replayed = _enriched(learner_id="u1")
    assert unattributed["version"] == 1
    assert forwarded["version"] == replayed["version"] == 2
    # an event that named its user has one row only
    assert _enriched(user_id="u1", learner_id="u1")["version"] == 1


def test_a_records_clean_rows_split_below_the_brokers_message_limit():
    """An imported record holds thousands of events, and their JSON is larger
    than their Avro: the clean rows go out in as many arrays as fit."""
    import orjson

    from streams.records import CLEAN_RECORD_MAX_BYTES, json_arrays

    rows = [{"client_event_id": f"e{i}", "pad": "x" * 700} for i in range(4000)]
    arrays = list(json_arrays(rows))
    assert len(arrays) > 1 and all(len(a) <= CLEAN_RECORD_MAX_BYTES for a in arrays)
    assert [r for a in arrays for r in orjson.loads(a)] == rows  # all of them, in order
    assert list(json_arrays(rows[:3])) == [orjson.dumps(rows[:3])]
