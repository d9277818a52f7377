"""Avro wire formats for Kafka.

* Without a schema registry: Avro single-object encoding (spec 1.10+):
  ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint of the writer
  schema's parsing canonical form + the Avro binary body. The reader finds
  the writer schema among the versions in ``schemas/avro`` and resolves it
  to the newest (reader) schema, so old data stays readable.
* With ``SCHEMA_REGISTRY_URL``: Confluent framing through confluent-kafka's
  schema registry client (magic byte 0 + 4-byte schema id).

A record of ``events.raw`` holds either one event (``event.vN.avsc``) or,
as the front door writes them, a batch: the events of one request bound
for one partition (``event_batch.vN.avsc``, an array of envelopes), encoded
and decoded in one call each. ``decode_many`` reads both.

An unknown fingerprint or a corrupt body raises ``DecodeError``; the stream
sends such records to the dead-letter topic, it never crashes on them.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

AVRO_DIR = Path(__file__).parent / "avro"
MAGIC = b"\xc3\x01"
_VERSION_FILE = re.compile(r"^event\.v(\d+)\.avsc$")
_BATCH_FILE = re.compile(r"^event_batch\.v(\d+)\.avsc$")


class DecodeError(ValueError):
    pass


@dataclass(frozen=True)
class SchemaVersion:
    version: int
    raw: dict
    parsed: Any  # marked as parsed: fastavro re-parses an unmarked schema on every call
    fingerprint: bytes  # 8 bytes, little-endian, as on the wire


def _fingerprint_le(parsed: Any) -> bytes:
    # fastavro's CRC-64-AVRO hex string already spells the little-endian
    # bytes the single-object header carries (checked in the tests against
    # the spec's own algorithm).
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def _load(pattern: re.Pattern[str]) -> tuple[SchemaVersion, ...]:
    out = []
    for path in AVRO_DIR.glob("*.avsc"):
        m = pattern.match(path.name)
        if not m:
            continue
        raw = json.loads(path.read_text())
        canonical = parse_schema(raw, _write_hint=False, _force=True)
        version = int(m.group(1))
        out.append(SchemaVersion(version, raw, parse_schema(raw), _fingerprint_le(canonical)))
    return tuple(sorted(out, key=lambda v: v.version))


@lru_cache(maxsize=1)
def versions() -> tuple[SchemaVersion, ...]:
    return _load(_VERSION_FILE)


@lru_cache(maxsize=1)
def batch_versions() -> tuple[SchemaVersion, ...]:
    return _load(_BATCH_FILE)


def latest() -> SchemaVersion:
    return versions()[-1]


class Codec(Protocol):
    def encode(self, record: dict) -> bytes: ...

    def decode(self, data: bytes) -> dict: ...

    def encode_batch(self, records: list[dict]) -> list[bytes]: ...

    def decode_many(self, data: bytes) -> list[dict]: ...

    def is_batch(self, data: bytes) -> bool: ...


class SingleObjectCodec:
    """Writes the newest schema; reads any known version, resolved to the
    newest: one event, or a batch of them in one record."""

    def __init__(self) -> None:
        self.writer = latest()
        self.batch_writer = batch_versions()[-1]
        self.by_fingerprint = {v.fingerprint: v for v in versions()}
        self.batches_by_fingerprint = {v.fingerprint: v for v in batch_versions()}

    def encode(self, record: dict) -> bytes:
        return _single_object(self.writer, record)

    def encode_batch(self, records: list[dict]) -> list[bytes]:
        """One record for all of them, in one call."""
        return [_single_object(self.batch_writer, {"events": records})]

    def decode(self, data: bytes) -> dict:
        writer = self.by_fingerprint.get(_fingerprint_of(data))
        if writer is None:
            raise DecodeError(f"unknown schema fingerprint {data[2:10].hex()}")
        return _read(data, writer, self.writer)

    def decode_many(self, data: bytes) -> list[dict]:
        """The events of one record, whichever format it was written in."""
        batch = self.batches_by_fingerprint.get(_fingerprint_of(data))
        if batch is None:
            return [self.decode(data)]
        return _read(data, batch, self.batch_writer)["events"]

    def is_batch(self, data: bytes) -> bool:
        return data[2:10] in self.batches_by_fingerprint and data[:2] == MAGIC


def _single_object(writer: SchemaVersion, datum: dict) -> bytes:
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(writer.fingerprint)
    fastavro.schemaless_writer(buf, writer.parsed, datum)
    return buf.getvalue()


def _fingerprint_of(data: bytes) -> bytes:
    if len(data) < 10 or data[:2] != MAGIC:
        raise DecodeError("not Avro single-object encoded (bad magic)")
    return data[2:10]


def _read(data: bytes, writer: SchemaVersion, reader: SchemaVersion) -> dict:
    try:
        return fastavro.schemaless_reader(
            io.BytesIO(data[10:]), writer.parsed, reader.parsed, return_record_name=True
        )
    except Exception as exc:  # corrupt body, truncated data, ...
        raise DecodeError(f"corrupt Avro body: {exc}") from exc


class RegistryCodec:
    """Confluent wire format against a schema registry (``SCHEMA_REGISTRY_URL``)."""

    def __init__(self, url: str, subject: str) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        client = SchemaRegistryClient({"url": url})
        schema_str = json.dumps(latest().raw)
        self._ctx = SerializationContext(subject.removesuffix("-value"), MessageField.VALUE)
        self._ser = AvroSerializer(client, schema_str, conf={"auto.register.schemas": True})
        self._de = AvroDeserializer(client, schema_str, return_record_name=True)

    def encode(self, record: dict) -> bytes:
        return self._ser(record, self._ctx)

    def decode(self, data: bytes) -> dict:
        try:
            return self._de(data, self._ctx)
        except Exception as exc:
            raise DecodeError(f"schema registry decode failed: {exc}") from exc

    # The registry's subject holds the event schema: a record is one event.
    def encode_batch(self, records: list[dict]) -> list[bytes]:
        return [self.encode(r) for r in records]

    def decode_many(self, data: bytes) -> list[dict]:
        return [self.decode(data)]

    def is_batch(self, data: bytes) -> bool:
        return False


def codec_for(schema_registry_url: str | None, topic: str) -> Codec:
    if schema_registry_url:
        return RegistryCodec(schema_registry_url, topic)
    return SingleObjectCodec()
