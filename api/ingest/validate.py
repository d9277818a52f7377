"""One JSON event in, an Avro envelope record (or a list of field errors) out.

Every rejection names the field and the reason, so a client can fix exactly
what is wrong. Validation is pure: the tenant, the clock and the bounds are
passed in; nothing here touches Kafka.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.ingest.pii import hash_pii
from schemas import dictionary
from schemas.codec import SchemaVersion, latest

FieldError = dict[str, str]

CLIENT_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
SERVER_SET = ("tenant_id", "received_at", "schema_version")
MAX_STRING = 2048
MAX_FREE_TEXT = 10_000


@dataclass(frozen=True)
class Bounds:
    max_future_s: float  # clock skew allowed into the future
    max_age_s: float  # late-arrival bound


@dataclass(frozen=True)
class _Field:
    name: str
    types: tuple[str, ...]  # avro primitive names, without "null"
    logical: str | None
    optional: bool


def _fields(record: dict) -> list[_Field]:
    out = []
    for f in record["fields"]:
        t = f["type"]
        branches = t if isinstance(t, list) else [t]
        optional = "null" in branches
        types, logical = [], None
        for b in branches:
            if b == "null":
                continue
            if isinstance(b, dict):
                logical = b.get("logicalType")
                types.append(b["type"])
            else:
                types.append(b)
        out.append(_Field(f["name"], tuple(types), logical, optional))
    return out


class EnvelopeShape:
    """The field lists of one envelope version, read from its Avro schema."""

    def __init__(self, schema: SchemaVersion) -> None:
        self.version = schema.version
        fields = {f["name"]: f for f in schema.raw["fields"]}
        self.core = [f for f in _fields(schema.raw) if f.name != "properties"]
        self.client_core = [f for f in self.core if f.name not in SERVER_SET]
        # what a client may send: computed once, checked for every event
        self.known = frozenset(
            {f.name for f in self.core} | set(dictionary.PII_FIELDS) | {"properties"}
        )
        self.properties: dict[str, list[_Field]] = {}
        self.property_names: dict[str, frozenset[str]] = {}
        self.record_fullname: dict[str, str] = {}
        for rec in fields["properties"]["type"]:
            self.properties[rec["name"]] = _fields(rec)
            self.property_names[rec["name"]] = frozenset(f["name"] for f in rec["fields"])
            self.record_fullname[rec["name"]] = f"{rec['namespace']}.{rec['name']}"


_SHAPE: EnvelopeShape | None = None


def shape() -> EnvelopeShape:
    global _SHAPE
    if _SHAPE is None:
        _SHAPE = EnvelopeShape(latest())
    return _SHAPE


def parse_timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError("not an ISO 8601 timestamp") from exc
    if ts.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset (for example 'Z')")
    return ts.astimezone(UTC)


def _check_value(f: _Field, value: Any, path: str, errors: list[FieldError]) -> Any:
    """Type-check one value against an Avro field; return the Avro-ready value."""
    if value is None:
        if not f.optional:
            errors.append({"field": path, "reason": "required"})
        return None
    t = f.types[0]
    if f.logical == "timestamp-millis":
        try:
            return parse_timestamp(value)
        except ValueError as exc:
            errors.append({"field": path, "reason": str(exc)})
            return None
    if t == "string":
        if not isinstance(value, str):
            errors.append({"field": path, "reason": "must be a string"})
        elif len(value) > (MAX_FREE_TEXT if path.endswith("free_text") else MAX_STRING):
            errors.append({"field": path, "reason": "too long"})
        elif not value and not f.optional:
            errors.append({"field": path, "reason": "must not be empty"})
        return value
    if t == "boolean":
        if not isinstance(value, bool):
            errors.append({"field": path, "reason": "must be true or false"})
        return value
    if t in ("int", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append({"field": path, "reason": "must be an integer"})
        elif t == "int" and not -(2**31) <= value < 2**31:
            errors.append({"field": path, "reason": "out of range"})
        return value
    if t in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append({"field": path, "reason": "must be a number"})
            return value
        if value != value or value in (float("inf"), float("-inf")):
            errors.append({"field": path, "reason": "must be finite"})
        return float(value)
    errors.append({"field": path, "reason": f"unsupported type {t}"})
    return None


def validate_event(
    raw: Any,
    *,
    tenant_id: str,
    pii_salt: str,
    received_at: datetime,
    bounds: Bounds,
) -> tuple[dict | None, list[FieldError]]:
    """Return (Avro record, []) for a valid event, else (None, errors)."""
    if not isinstance(raw, dict):
        return None, [{"field": "", "reason": "event must be a JSON object"}]
    errors: list[FieldError] = []
    for name in SERVER_SET:
        if name in raw:
            errors.append({"field": name, "reason": "set by the server; do not send it"})

    name = raw.get("event_name")
    spec = dictionary.spec(name) if isinstance(name, str) else None
    if spec is None:
        errors.append(
            {
                "field": "event_name",
                "reason": "required" if name is None else f"unknown event {name!r}",
            }
        )
        return None, errors

    sh = shape()
    known = sh.known
    for key in raw:
        if key not in known and key not in SERVER_SET:
            errors.append({"field": key, "reason": "unknown field"})

    record: dict[str, Any] = {}
    for f in sh.client_core:
        record[f.name] = _check_value(f, raw.get(f.name), f.name, errors)

    cid = record.get("client_event_id")
    if isinstance(cid, str) and not CLIENT_EVENT_ID.match(cid):
        errors.append(
            {"field": "client_event_id", "reason": "1-128 characters of A-Z a-z 0-9 _ . : -"}
        )
    if isinstance(record.get("persona"), str) and record["persona"] not in spec.personas:
        errors.append(
            {
                "field": "persona",
                "reason": f"must be one of {', '.join(spec.personas)} for {spec.name}",
            }
        )
    for cond in spec.requires:
        if record.get(cond) is None and not any(e["field"] == cond for e in errors):
            errors.append({"field": cond, "reason": f"required for {spec.name}"})
    score = record.get("readiness_score")
    if isinstance(score, float) and not 0 <= score <= 100:
        errors.append({"field": "readiness_score", "reason": "must be between 0 and 100"})
    supplied_hash = record.get("pii_hash")
    if isinstance(supplied_hash, str) and not HEX64.match(supplied_hash):
        errors.append({"field": "pii_hash", "reason": "must be 64 lowercase hex characters"})

    ts = record.get("event_timestamp")
    if isinstance(ts, datetime):
        skew = (ts - received_at).total_seconds()
        if skew > bounds.max_future_s:
            errors.append(
                {
                    "field": "event_timestamp",
                    "reason": f"{skew:.0f}s in the future (clock skew bound "
                    f"{bounds.max_future_s:.0f}s)",
                }
            )
        elif -skew > bounds.max_age_s:
            errors.append(
                {
                    "field": "event_timestamp",
                    "reason": f"older than the late-arrival bound ({bounds.max_age_s:.0f}s)",
                }
            )

    # PII: hash raw e-mail / phone with the tenant's secret; never keep the raw value.
    if raw.get("email") is not None and raw.get("email_sha256") is not None:
        errors.append({"field": "email_sha256", "reason": "send email or email_sha256, not both"})
    for pii_field, target in dictionary.PII_FIELDS.items():
        value = raw.get(pii_field)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            errors.append({"field": pii_field, "reason": "must be a non-empty string"})
            continue
        if pii_field == "email_sha256" and not HEX64.match(value):
            errors.append(
                {
                    "field": pii_field,
                    "reason": "must be 64 lowercase hex characters: SHA-256 of the "
                    "dictionary's email_hash_salt followed by the trimmed, lower-cased e-mail",
                }
            )
            continue
        record[target] = hash_pii(pii_salt, pii_field, value)

    props_raw = raw.get("properties", {})
    prop_fields = sh.properties[spec.properties_record]
    props: dict[str, Any] = {}
    if not isinstance(props_raw, dict):
        errors.append({"field": "properties", "reason": "must be a JSON object"})
    else:
        allowed = sh.property_names[spec.properties_record]
        for key in props_raw:
            if key not in allowed:
                errors.append(
                    {"field": f"properties.{key}", "reason": f"unknown property for {spec.name}"}
                )
        for f in prop_fields:
            props[f.name] = _check_value(f, props_raw.get(f.name), f"properties.{f.name}", errors)

    if errors:
        return None, errors
    record["schema_version"] = sh.version
    record["tenant_id"] = tenant_id
    record["received_at"] = received_at
    record["properties"] = (sh.record_fullname[spec.properties_record], props)
    return record, []
