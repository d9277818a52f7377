"""The lock of published Avro schemas: ``schemas/avro/schemas.lock.json``.

Records carry the writer schema's CRC-64-AVRO fingerprint (codec.py), and a
reader finds the writer schema by it. Editing a published ``NAME.vN.avsc``
in place changes its fingerprint, so every record already written with it
becomes an unknown-fingerprint dead letter. The lock holds each published
version's fingerprint; ``check`` fails when one changed or went missing, or
when a version file is not locked yet. A new field therefore means a new
version file (``event.v3.avsc``, with defaults for what it adds), locked
with ``skillstream schemas lock``, which only ever adds entries.

Only the parsing canonical form is fingerprinted: docs and field order of
attributes may change, anything a reader resolves may not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from fastavro.schema import parse_schema

from schemas.codec import AVRO_DIR, _fingerprint_le

LOCK_NAME = "schemas.lock.json"
_VERSIONED = re.compile(r"^[a-z_]+\.v\d+\.avsc$")
_ABOUT = (
    "Fingerprints (CRC-64-AVRO of the parsing canonical form) of every published schema "
    "version. Never edit an entry: add a new version file and run `skillstream schemas lock`."
)


@dataclass(frozen=True)
class Problem:
    schema: str
    reason: str

    def __str__(self) -> str:
        return f"{self.schema}: {self.reason}"


def fingerprints(avro_dir: Path = AVRO_DIR) -> dict[str, str]:
    """Each versioned schema file -> its fingerprint (hex, as on the wire)."""
    out = {}
    for path in sorted(avro_dir.glob("*.avsc")):
        if _VERSIONED.match(path.name):
            raw = json.loads(path.read_text())
            out[path.name] = _fingerprint_le(
                parse_schema(raw, _write_hint=False, _force=True)
            ).hex()
    return out


def read_lock(avro_dir: Path = AVRO_DIR) -> dict[str, str]:
    path = avro_dir / LOCK_NAME
    return json.loads(path.read_text())["published"] if path.exists() else {}


def check(avro_dir: Path = AVRO_DIR) -> list[Problem]:
    """Every way the schema files and the lock disagree (empty: they agree)."""
    locked, now = read_lock(avro_dir), fingerprints(avro_dir)
    problems = []
    for name, fp in sorted(locked.items()):
        if name not in now:
            problems.append(Problem(name, "published version deleted (its records need it)"))
        elif now[name] != fp:
            problems.append(
                Problem(
                    name,
                    f"published fingerprint {fp}, file now {now[name]}: a published version "
                    "is immutable (existing records would become dead letters); put the change "
                    "in a new version file",
                )
            )
    for name in sorted(set(now) - set(locked)):
        problems.append(Problem(name, "not in the lock: run `skillstream schemas lock`"))
    return problems


def lock(avro_dir: Path = AVRO_DIR) -> list[str]:
    """Add every unlocked version to the lock; return the names added. Never
    rewrites an entry: a changed published version stays a failure."""
    locked, now = read_lock(avro_dir), fingerprints(avro_dir)
    added = sorted(set(now) - set(locked))
    locked.update({name: now[name] for name in added})
    text = json.dumps({"about": _ABOUT, "published": dict(sorted(locked.items()))}, indent=2)
    (avro_dir / LOCK_NAME).write_text(text + "\n")
    return added
