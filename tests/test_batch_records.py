"""The batch record format (docs/ingestion.md, "The Kafka record"): encoded
and decoded in one call, old one-event records still read, each batch
version carrying one locked envelope version, groups split below Kafka's
message size limit and sent where each event's own key would go."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastavro.schema import parse_schema, to_parsing_canonical_form

from api.ingest.batches import encode_groups, partition_for
from api.ingest.validate import Bounds, validate_event
from schemas.codec import AVRO_DIR, SingleObjectCodec, batch_versions, versions
from schemas.examples import example_event


def _records(n: int, users: int = 7) -> list[dict]:
    out = []
    for i in range(n):
        ev = example_event("lesson_completed", client_event_id=f"b-{i}", user_id=f"u{i % users}")
        now, bounds = datetime.now(UTC), Bounds(300, 86400)
        rec, errors = validate_event(
            ev, tenant_id="t1", pii_salt="s", received_at=now, bounds=bounds
        )
        assert not errors, errors
        out.append(rec)
    return out


def test_a_batch_round_trips_and_one_event_records_still_read() -> None:
    codec, records = SingleObjectCodec(), _records(5)
    [value] = codec.encode_batch(records)
    assert codec.is_batch(value)
    assert [r["client_event_id"] for r in codec.decode_many(value)] == [f"b-{i}" for i in range(5)]
    single = codec.encode(records[0])
    assert not codec.is_batch(single)
    assert codec.decode_many(single) == [codec.decode(single)]


def test_each_batch_version_carries_a_published_envelope_version() -> None:
    envelopes = {to_parsing_canonical_form(v.parsed) for v in versions()}
    for batch in batch_versions():
        items = json.loads((AVRO_DIR / f"event_batch.v{batch.version}.avsc").read_text())["fields"][
            0
        ]["type"]["items"]
        assert to_parsing_canonical_form(parse_schema(items, _force=True)) in envelopes


def test_groups_follow_each_events_key_and_split_below_the_limit() -> None:
    codec, records = SingleObjectCodec(), _records(40)
    keys = [f"t1:{r['user_id']}".encode() for r in records]
    groups = encode_groups(records, keys, 3, codec.encode_batch)
    assert sorted(i for g in groups for i in g.indexes) == list(range(40))
    for g in groups:
        assert {partition_for(keys[i], 3) for i in g.indexes} == {g.partition}
        assert g.indexes == sorted(g.indexes)  # request order kept
    small = encode_groups(records, keys, 3, codec.encode_batch, max_bytes=2_000)
    assert len(small) > len(groups)
    assert all(len(g.value) <= 2_000 or len(g.indexes) == 1 for g in small)
    assert sorted(i for g in small for i in g.indexes) == list(range(40))
