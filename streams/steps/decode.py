"""decode: a record's bytes → its events, one item each.

A record of events.raw holds one event or a batch of them (the front
door's, schemas/codec.py); either is decoded in one codec call. A record
that does not decode is dead-lettered whole; an event that fails a later
step is dead-lettered alone, re-encoded on its own (``alone``), so a
replay sends just that event.
"""

from __future__ import annotations

from core.keys import learner_key_bytes
from schemas import dictionary
from schemas.codec import Codec, DecodeError
from streams.pipeline import STEP_OUTCOMES, Item, Outcome

NAME = "decode"


def decode_record(codec: Codec, record: Item) -> list[Item] | Outcome:
    try:
        events = codec.decode_many(record.value)
    except DecodeError as exc:
        STEP_OUTCOMES.labels(NAME, "failed").inc()
        return Outcome(record, False, failed_step=NAME, error=f"DecodeError: {exc}"[:1000])
    STEP_OUTCOMES.labels(NAME, "passed").inc(len(events))
    if not codec.is_batch(record.value):
        record.record = events[0]
        return [record]
    return [
        Item(record.topic, record.partition, record.offset, record.key, record.value,
             record.headers, rec, index=i, batched=True)
        for i, rec in enumerate(events)
    ]  # fmt: skip


def alone(codec: Codec, item: Item) -> tuple[bytes | None, bytes]:
    """The key and value of a record holding just this event, as it arrived
    (a step may have changed ``item.record``); its headers name it."""
    if not item.batched:
        return item.key, item.value
    rec = codec.decode_many(item.value)[item.index]
    item.headers = [
        ("persona", rec["persona"].encode()),
        ("event_name", rec["event_name"].encode()),
        ("tenant_id", rec["tenant_id"].encode()),
        ("essential", b"1" if _essential(rec["event_name"]) else b"0"),
    ]
    learner = rec["user_id"] or rec["anonymous_id"]
    return learner_key_bytes(rec["tenant_id"], learner), codec.encode(rec)


def _essential(name: str) -> bool:
    spec = dictionary.BY_NAME.get(name)
    return bool(spec and spec.essential)
