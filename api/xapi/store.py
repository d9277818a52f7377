"""Accepted statements (``xapi_statements``) and tenants' mapping rules
(``xapi_mappings``), both in the store.

A statement's row answers ``GET /xapi/statements?statementId=`` and tells a
statement id re-sent with other content (409) from a retry (answered as
accepted, not produced again). It is made once Kafka acknowledged the
statement's event and written behind the answer: appended to a journal
file (one write per request), kept in memory until stored, and stored by a
thread in batches (every ``flush_s``, all that waited). So:

* a GET right after the POST finds it (the rows waiting are read first);
* ids accepted by this process are kept in memory (bounded), so a retry
  or a 409 costs no query; an id not among them is looked up in the store;
* a crash of the process loses no row: the journal's segments of a process
  that is gone are stored by the next one to start (a row stored twice is
  one row: the table replaces by (tenant, statement id)). The journal is
  not fsync'd: a crash of the machine can lose the last rows' log entries
  (their events are in Kafka regardless, counted once);
* the store down: rows wait (up to ``PENDING_MAX``, then a request is
  answered 503 and its retry counts once) and are stored once it is back.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from api.audit.chain import audit
from api.xapi.mapping import VOIDED_VERB, Mapping, check_persona, parse_rules
from core.threads import BackgroundThread
from sinks.store import Store, encode_rows

log = logging.getLogger("skillstream.api")

RECENT_MAX = 200_000
PENDING_MAX = 200_000


class LogFull(RuntimeError):
    pass


class StatementLog:
    def __init__(self, store: Store, journal_dir: Path | None = None,
                 flush_s: float = 0.02) -> None:  # fmt: skip
        self.store = store
        self.flush_s = flush_s
        self._lock = threading.Lock()
        self._recent: OrderedDict[tuple[str, str], str] = OrderedDict()
        # rows accepted, not yet stored (or being stored): key -> row
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}
        self._queue: list[dict[str, Any]] = []
        self._journal_dir = journal_dir
        self._segment: Any = None  # the open journal file of the rows in _queue
        self._seq = 0
        self._unstored: list[Path] = []  # segments of rows a failed flush put back
        self._writer = BackgroundThread("xapi-log", self._run)
        if journal_dir is not None:
            journal_dir.mkdir(parents=True, exist_ok=True)
            self._replay()

    # --- the journal ------------------------------------------------------------
    def _replay(self) -> None:
        """Store what a process that is gone left in its journal."""
        assert self._journal_dir is not None
        for path in sorted(self._journal_dir.glob("*.jsonl")):
            pid = int(path.name.split("-", 1)[0])
            if pid != os.getpid() and _alive(pid):
                continue
            rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
            if rows:
                self.store.insert("xapi_statements", rows)
                log.info("xAPI statement log: %d rows stored from %s", len(rows), path.name)
            path.unlink()

    def _journal(self, data: bytes) -> None:  # under the lock
        if self._journal_dir is None:
            return
        if self._segment is None:
            self._seq += 1
            name = f"{os.getpid()}-{time.time_ns()}-{self._seq}.jsonl"
            self._segment = open(self._journal_dir / name, "ab")  # noqa: SIM115
        self._segment.write(data)
        self._segment.flush()

    # --- writing --------------------------------------------------------------
    def record(self, rows: list[dict[str, Any]]) -> None:
        """Rows of statements Kafka acknowledged: journaled now, stored soon."""
        if not rows:
            return
        data = encode_rows(rows) if self._journal_dir is not None else b""
        with self._lock:
            if len(self._pending) + len(rows) > PENDING_MAX:
                raise LogFull(f"{len(self._pending)} statements wait for the store")
            self._journal(data)
            for r in rows:
                key = (r["tenant_id"], r["statement_id"])
                self._pending[key] = r
                self._recent[key] = r["content_hash"]
            self._queue.extend(rows)
            while len(self._recent) > RECENT_MAX:
                self._recent.popitem(last=False)
            self._writer.start()  # on the first statement: no thread where xAPI is unused

    def _run(self) -> None:
        # every flush_s: the requests in flight meanwhile join one insert
        while not self._writer.stopping.wait(self.flush_s):
            self.flush()

    def flush(self) -> bool:
        """Store every row waiting now; False if the store refused them (they
        stay waiting, the journal keeps them)."""
        with self._lock:
            batch, segment = self._queue, self._segment
            self._queue, self._segment = [], None
        if not batch:
            return True
        try:
            self.store.insert("xapi_statements", batch)
        except Exception:
            log.exception("xAPI statement log: %d rows not stored yet", len(batch))
            with self._lock:  # back in front; their segment stays until they are stored
                self._queue[:0] = batch
                if segment is not None:
                    segment.close()
                    self._unstored.append(Path(segment.name))
            time.sleep(1.0)
            return False
        with self._lock:
            for r in batch:
                key = (r["tenant_id"], r["statement_id"])
                if self._pending.get(key) is r:
                    del self._pending[key]
            done, self._unstored = self._unstored, []
        if segment is not None:
            segment.close()
            done.append(Path(segment.name))
        for path in done:
            path.unlink(missing_ok=True)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        self._writer.stop(timeout_s)
        self.flush()

    # --- reading --------------------------------------------------------------
    def hashes(self, tenant_id: str, ids: list[str]) -> dict[str, str]:
        """id -> content hash of the ids already accepted."""
        out, missing = {}, []
        with self._lock:
            for sid in ids:
                h = self._recent.get((tenant_id, sid))
                if h is None:
                    missing.append(sid)
                else:
                    out[sid] = h
        if missing:
            rows = self.store.query(
                "SELECT statement_id, content_hash AS h FROM xapi_statements"
                " WHERE tenant_id = {t:String} AND statement_id IN {ids:Array(String)}",
                {"t": tenant_id, "ids": missing},
            )
            out.update({r["statement_id"]: r["h"] for r in rows})
        return out

    def get(self, tenant_id: str, statement_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._pending.get((tenant_id, statement_id))
        if row is not None:
            return json.loads(row["statement"])
        rows = self.store.query(
            "SELECT statement, voided_id FROM xapi_statements FINAL"
            " WHERE tenant_id = {t:String} AND statement_id = {s:String}",
            {"t": tenant_id, "s": statement_id},
        )
        return json.loads(rows[0]["statement"]) if rows else None

    def is_voided(self, tenant_id: str, statement_id: str) -> bool:
        with self._lock:
            if any(r["tenant_id"] == tenant_id and r["voided_id"] == statement_id
                   and r["verb_id"] == VOIDED_VERB for r in self._pending.values()):  # fmt: skip
                return True
        rows = self.store.query(
            "SELECT count() AS n FROM xapi_statements WHERE tenant_id = {t:String}"
            " AND verb_id = {v:String} AND voided_id = {s:String}",
            {"t": tenant_id, "v": VOIDED_VERB, "s": statement_id},
        )
        return bool(rows and rows[0]["n"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MappingRegistry:
    """Each tenant's rules, cached for ``ttl_s`` (a change through this
    process is seen at once, through another within ``ttl_s``)."""

    def __init__(self, store: Store, ttl_s: float = 10.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._by_tenant: dict[str, Mapping] = {}

    def _load(self) -> None:
        rows = self.store.query("SELECT tenant_id, rules, persona FROM xapi_mappings FINAL")
        self._by_tenant = {
            r["tenant_id"]: Mapping(parse_rules(json.loads(r["rules"])), r["persona"]) for r in rows
        }
        self._at = time.monotonic()

    def for_tenant(self, tenant_id: str) -> Mapping:
        with self._lock:
            if time.monotonic() - self._at > self.ttl_s:
                self._load()
            return self._by_tenant.get(tenant_id, Mapping())

    def describe(self, tenant_id: str) -> dict[str, Any]:
        m = self.for_tenant(tenant_id)
        return {"rules": [r.__dict__ for r in m.rules], "persona": m.persona}

    def change(self, tenant_id: str, *, rules: list | None, persona: str | None,
               actor_id: str, actor_role: str) -> dict[str, Any]:  # fmt: skip
        """Replace the tenant's rules and/or persona (audited)."""
        with self._lock:
            self._load()
            now = self._by_tenant.get(tenant_id, Mapping())
        new_rules = parse_rules(rules) if rules is not None else now.rules
        new_persona = check_persona(persona) if persona is not None else now.persona
        detail = {"rules": [r.__dict__ for r in new_rules], "persona": new_persona}
        row = {"tenant_id": tenant_id, "rules": json.dumps(detail["rules"]),
               "persona": new_persona, "version": datetime.now(UTC)}  # fmt: skip
        with audit(self.store, tenant_id=tenant_id, actor_id=actor_id, actor_role=actor_role,
                   action="tenant.xapi_mapping", resource=f"tenant:{tenant_id}",
                   outcome="ok", detail=detail):  # fmt: skip
            self.store.insert("xapi_mappings", [row])
        with self._lock:
            self._at = float("-inf")
        return detail
