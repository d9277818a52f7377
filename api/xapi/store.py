"""Accepted statements (``xapi_statements``) and tenants' mapping rules
(``xapi_mappings``), both in the store.

A statement's row is written once Kafka acknowledged its event: it answers
``GET /xapi/statements?statementId=`` at once and tells a statement id
re-sent with other content (409) from a retry (answered as accepted, not
produced again). Ids accepted by this process are also kept in memory
(bounded), so a retry costs no query.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from api.audit.chain import audit
from api.xapi.mapping import VOIDED_VERB, Mapping, check_persona, parse_rules
from sinks.store import Store

RECENT_MAX = 200_000


class StatementLog:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._recent: OrderedDict[tuple[str, str], str] = OrderedDict()

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
                "SELECT statement_id, any(content_hash) AS h FROM xapi_statements"
                " WHERE tenant_id = {t:String} AND statement_id IN {ids:Array(String)}"
                " GROUP BY statement_id",
                {"t": tenant_id, "ids": missing},
            )
            out.update({r["statement_id"]: r["h"] for r in rows})
        return out

    def record(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.store.insert("xapi_statements", rows)
        with self._lock:
            for r in rows:
                self._recent[(r["tenant_id"], r["statement_id"])] = r["content_hash"]
            while len(self._recent) > RECENT_MAX:
                self._recent.popitem(last=False)

    def get(self, tenant_id: str, statement_id: str) -> dict[str, Any] | None:
        rows = self.store.query(
            "SELECT statement, voided_id FROM xapi_statements FINAL"
            " WHERE tenant_id = {t:String} AND statement_id = {s:String}",
            {"t": tenant_id, "s": statement_id},
        )
        return json.loads(rows[0]["statement"]) if rows else None

    def is_voided(self, tenant_id: str, statement_id: str) -> bool:
        rows = self.store.query(
            "SELECT count() AS n FROM xapi_statements WHERE tenant_id = {t:String}"
            " AND verb_id = {v:String} AND voided_id = {s:String}",
            {"t": tenant_id, "v": VOIDED_VERB, "s": statement_id},
        )
        return bool(rows and rows[0]["n"])


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
