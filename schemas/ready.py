"""The ``reports.ready`` event: Avro single-object encoding of
``avro/reports_ready.v1.avsc`` (same wire format as the raw events, see codec.py)."""

from __future__ import annotations

import io
import json
from functools import lru_cache
from typing import Any

import fastavro
from fastavro.schema import parse_schema

from schemas.codec import AVRO_DIR, MAGIC, DecodeError, _fingerprint_le

SCHEMA_FILE = AVRO_DIR / "reports_ready.v1.avsc"


@lru_cache(maxsize=1)
def _schema() -> tuple[Any, bytes]:
    parsed = parse_schema(json.loads(SCHEMA_FILE.read_text()), _force=True)
    return parsed, _fingerprint_le(parsed)


def encode(record: dict[str, Any]) -> bytes:
    parsed, fp = _schema()
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, record)
    return MAGIC + fp + buf.getvalue()


def decode(data: bytes) -> dict[str, Any]:
    parsed, fp = _schema()
    if data[:2] != MAGIC or data[2:10] != fp:
        raise DecodeError("not a reports.ready v1 record")
    return fastavro.schemaless_reader(io.BytesIO(data[10:]), parsed, parsed)
