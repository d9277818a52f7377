"""An import's progress and counts, one JSON file per import in the run
directory (``imports/<id>.json``), written after every chunk Kafka
acknowledged: what a second run resumes from, what ``GET /v1/imports/{id}``
and the dashboard show.

An import's id comes from its tenant and its files (each file's name, size
and version), so running the same command again finds the same import:
an interrupted one resumes after its last acknowledged chunk, a finished
one adds nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

STATUSES = ("running", "sending", "applying", "recomputing", "done", "failed", "interrupted")


class ImportBusy(RuntimeError):
    """Another process runs this import now."""


@dataclass
class FileProgress:
    name: str
    size: int
    rows_done: int = 0  # rows of the file acknowledged by Kafka (or rejected), in order
    done: bool = False


@dataclass
class ImportState:
    import_id: str
    tenant_id: str
    tenant: str
    source: str
    status: str = "running"
    dry_run: bool = False
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    already_imported: int = 0  # rows an earlier run of this import had done
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    bytes_total: int = 0
    bytes_done: int = 0
    events_per_s: float = 0.0
    eta_s: float | None = None
    first_day: str | None = None  # the days the accepted events fall on
    last_day: str | None = None
    records_behind: int | None = None  # while the worker applies what was sent
    rejects_file: str | None = None
    error: str | None = None
    runs: int = 0
    files: dict[str, FileProgress] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out["files"] = [asdict(f) for f in self.files.values()]
        out["progress"] = round(self.bytes_done / self.bytes_total, 4) if self.bytes_total else 0
        return out

    def count_reason(self, reasons: Counter) -> None:
        for reason, n in reasons.items():
            self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + n


def import_id(tenant_id: str, identities: list[str]) -> str:
    return "imp_" + hashlib.sha256("|".join([tenant_id, *identities]).encode()).hexdigest()[:16]


class StateStore:
    """``<run dir>/imports``: one JSON file per import, replaced atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, iid: str) -> Path:
        if not iid.startswith("imp_") or not iid[4:].isalnum():
            raise KeyError(iid)
        return self.root / f"{iid}.json"

    def load(self, iid: str) -> ImportState | None:
        try:
            raw = orjson.loads(self.path(iid).read_bytes())
        except (OSError, KeyError, orjson.JSONDecodeError):
            return None
        files = {k: FileProgress(**v) for k, v in raw.pop("files", {}).items()}
        known = set(ImportState.__dataclass_fields__)
        return ImportState(**{k: v for k, v in raw.items() if k in known}, files=files)

    def save(self, st: ImportState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        st.updated_at = time.time()
        target = self.path(st.import_id)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(asdict(st)))
        tmp.replace(target)

    def all(self, tenant_id: str | None = None) -> list[ImportState]:
        out = []
        for p in sorted(self.root.glob("imp_*.json")) if self.root.exists() else []:
            st = self.load(p.stem)
            if st is not None and (tenant_id is None or st.tenant_id == tenant_id):
                out.append(st)
        return sorted(out, key=lambda s: -s.started_at)

    def lock(self, iid: str) -> Any:
        """Held while an import runs: a second process refuses (ImportBusy)."""
        self.root.mkdir(parents=True, exist_ok=True)
        f = open(self.root / f"{iid}.lock", "w")  # noqa: SIM115 (released with the import)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            f.close()
            raise ImportBusy(f"import {iid} is running in another process") from exc
        return f
