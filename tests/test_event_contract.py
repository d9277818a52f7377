"""The event contract: naming rules, dictionary ↔ schema, compatibility, wire format."""

from __future__ import annotations

import io
import re
import struct
from itertools import combinations

import fastavro
import pytest
from fastavro.schema import to_parsing_canonical_form

from schemas import dictionary
from schemas.codec import MAGIC, DecodeError, SingleObjectCodec, latest, versions
from schemas.examples import PROPERTIES

SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")
PREFIXES = {"student": "student_", "career_changer": "career_changer_", "advisor": "advisor_"}


@pytest.mark.parametrize("spec", dictionary.EVENTS, ids=lambda s: s.name)
def test_event_names_follow_object_action_outcome(spec):
    name = spec.name
    assert SNAKE.match(name), f"{name}: snake_case with at least two words"
    base = re.sub(r"_v\d+$", "", name)
    if base != name:  # _vN only as a schema change of an existing event
        assert int(name.rsplit("_v", 1)[1]) >= 2 and base in dictionary.BY_NAME
    outcome = base.rsplit("_", 1)[1]
    assert outcome.endswith("ed") or name in dictionary.NAMING_EXCEPTIONS, (
        f"{name}: the last word must be an outcome (past participle)"
    )


@pytest.mark.parametrize("spec", dictionary.EVENTS, ids=lambda s: s.name)
def test_persona_prefix_names_the_only_persona(spec):
    assert set(spec.personas) <= set(dictionary.PERSONAS)
    for persona, prefix in PREFIXES.items():
        if spec.name.startswith(prefix):
            assert spec.personas == (persona,), f"{spec.name} is prefixed {prefix}"
    if set(spec.personas) == set(dictionary.PERSONAS):
        assert not any(spec.name.startswith(p) for p in PREFIXES.values())


def test_dictionary_entries_are_complete():
    seed_003 = {
        "student_onboarding_completed": 3, "resume_parsed": 5, "assessment_completed": 5,
        "career_match_viewed": 2, "action_plan_accepted": 4, "task_completion_logged": 4,
        "advisor_note_added": 7, "cohort_assessment_assigned": 7, "readiness_alert_triggered": 3,
        "report_export_generated": 7, "session_started": 2, "settings_tracking_opt_out": 7,
    }  # fmt: skip
    for name, years in seed_003.items():
        assert dictionary.BY_NAME[name].retention_years == years
    engagement = {e.engagement_component for e in dictionary.EVENTS} - {None}
    assert engagement == {
        "sign_ins", "live_sessions", "phase_advances", "submissions", "lessons_completed"
    }  # fmt: skip
    for spec in dictionary.EVENTS:
        assert spec.description and spec.personas and spec.retention_years > 0
        assert set(spec.requires) <= set(dictionary.CONDITIONAL_FIELDS)
    assert dictionary.BY_NAME["session_started"].essential  # security log
    assert dictionary.BY_NAME["settings_tracking_opt_out"].essential
    assert not dictionary.BY_NAME["lesson_completed"].essential


def test_dictionary_and_newest_schema_agree():
    env = latest().raw
    branches = {
        r["name"]: r for r in next(f for f in env["fields"] if f["name"] == "properties")["type"]
    }
    assert {s.properties_record for s in dictionary.EVENTS} == set(branches)
    core = {f["name"] for f in env["fields"]}
    assert set(dictionary.CONDITIONAL_FIELDS) <= core
    assert set(dictionary.PII_FIELDS.values()) <= core
    assert not set(dictionary.PII_FIELDS) & core  # raw PII has no place in the schema
    for spec in dictionary.EVENTS:
        assert set(PROPERTIES[spec.name]) <= {
            f["name"] for f in branches[spec.properties_record]["fields"]
        }
    for v in versions():
        names = {
            r["name"] for r in next(f for f in v.raw["fields"] if f["name"] == "properties")["type"]
        }
        assert names == {
            s.properties_record for s in dictionary.EVENTS if s.since_version <= v.version
        }


def _sample_for(schema):
    """One record per union branch, written with the older schema."""
    names = [
        r["name"]
        for r in next(f for f in schema.raw["fields"] if f["name"] == "properties")["type"]
    ]
    by_record = {s.properties_record: s for s in dictionary.EVENTS}
    from datetime import UTC, datetime

    from api.ingest.validate import Bounds, validate_event
    from schemas.examples import example_event

    out = []
    for name in names:
        ev = example_event(by_record[name].name)
        rec, errs = validate_event(
            ev, tenant_id="t", pii_salt="s", received_at=datetime.now(UTC),
            bounds=Bounds(300, 86400 * 7),
        )  # fmt: skip
        assert not errs
        fields = {f["name"] for f in schema.raw["fields"]}
        rec = {k: v for k, v in rec.items() if k in fields}
        rec["schema_version"] = schema.version
        rec["properties"] = (f"skillstream.events.{name}", rec["properties"][1])
        out.append(rec)
    return out


@pytest.mark.parametrize(
    "old,new", list(combinations(versions(), 2)), ids=lambda v: f"v{v.version}"
)
def test_every_newer_schema_reads_every_older_one(old, new):
    for record in _sample_for(old):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, old.parsed, record)
        buf.seek(0)
        back = fastavro.schemaless_reader(buf, old.parsed, new.parsed, return_record_name=True)
        assert back["client_event_id"] == record["client_event_id"]
        assert back["properties"][0] == record["properties"][0]
        for f in new.raw["fields"]:
            if f["name"] not in {g["name"] for g in old.raw["fields"]}:
                assert "default" in f, f"new field {f['name']} needs a default"


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO as the Avro specification writes it (independent of fastavro)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp


def test_single_object_encoding_header_matches_the_spec():
    codec = SingleObjectCodec()
    rec = _sample_for(latest())[0]
    data = codec.encode(rec)
    assert data[:2] == MAGIC == b"\xc3\x01"
    canonical = to_parsing_canonical_form(latest().parsed).encode()
    assert data[2:10] == struct.pack("<Q", crc64_avro(canonical))
    assert codec.decode(data)["client_event_id"] == rec["client_event_id"]


def test_old_version_data_decodes_with_the_newest_reader():
    old = versions()[0]
    rec = _sample_for(old)[0]
    buf = io.BytesIO(MAGIC + old.fingerprint)
    buf.seek(0, 2)
    fastavro.schemaless_writer(buf, old.parsed, rec)
    out = SingleObjectCodec().decode(buf.getvalue())
    assert out["schema_version"] == old.version and out["program_id"] is None


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "bad magic"),
        (b"\x00\x00\x00\x00\x01hello", "bad magic"),
        (MAGIC + b"\x01" * 8 + b"\x00", "unknown schema fingerprint"),
        (MAGIC + latest().fingerprint + b"\xff\xff", "corrupt Avro body"),
    ],
)
def test_undecodable_bytes_raise_decode_error_not_crash(data, reason):
    with pytest.raises(DecodeError, match=reason):
        SingleObjectCodec().decode(data)
