"""Org data (who manages, mentors, owns what) and the audit trail.

Links live in ``org_links`` (ReplacingMergeTree; an unlink is a newer version
with ``deleted = 1``). Every change, and every refused report request, is
appended to the hash-chained ``audit_events`` (api/audit/chain.py).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from api.audit.chain import audit
from sinks.store import Store

__all__ = ["audit", "Link", "OrgError", "OrgRegistry", "RELATIONS"]

log = logging.getLogger("skillstream.audit")

RELATIONS = ("manager", "mentor", "program_owner")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")


class OrgError(ValueError):
    pass


# How long a subject's links read from the store are reused (s): every
# report request computes its scope from them, and a read waits behind the
# sink's writes. A link this process writes clears them at once; one
# written by another process (API replicas on a ClickHouse server, a CLI
# with CLICKHOUSE_URL) shows within this time.
ORG_CACHE_S = 1.0


class _Objects:
    """The links read per (store, tenant, relation, subject), each with the
    count of this process's link writes before it was read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writes = 0
        self._entries: dict[tuple, tuple[int, float, tuple[str, ...]]] = {}

    @property
    def writes(self) -> int:
        with self._lock:
            return self._writes

    def get(self, key: tuple) -> tuple[str, ...] | None:
        with self._lock:
            got = self._entries.get(key)
            if got is None or got[0] != self._writes or time.monotonic() - got[1] > ORG_CACHE_S:
                return None
            return got[2]

    def put(self, key: tuple, writes: int, objects: tuple[str, ...]) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (writes, time.monotonic(), objects)

    def changed(self) -> None:
        with self._lock:
            self._writes += 1
            self._entries.clear()


_OBJECTS = _Objects()


@dataclass(frozen=True)
class Link:
    tenant_id: str
    relation: str
    subject_id: str
    object_id: str


class OrgRegistry:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _write(self, link: Link, *, deleted: bool, actor: str, actor_role: str) -> None:
        if link.relation not in RELATIONS:
            raise OrgError(f"relation must be one of {', '.join(RELATIONS)}")
        for name in ("subject_id", "object_id"):
            if not _ID.match(getattr(link, name)):
                raise OrgError(f"{name}: 1-128 of letters, digits, _ . : @ -")
        row = {
            "tenant_id": link.tenant_id,
            "relation": link.relation,
            "subject_id": link.subject_id,
            "object_id": link.object_id,
            "deleted": int(deleted),
            "changed_by": actor,
            "changed_at": datetime.now(UTC),
            "version": time.time_ns(),
        }
        with audit(
            self.store,
            tenant_id=link.tenant_id,
            actor_id=actor,
            actor_role=actor_role,
            action="org.unlink" if deleted else "org.link",
            resource=f"{link.relation}:{link.subject_id}->{link.object_id}",
            outcome="ok",
        ):
            try:
                self.store.insert("org_links", [row])
            finally:
                _OBJECTS.changed()

    def link(self, link: Link, *, actor: str, actor_role: str) -> None:
        self._write(link, deleted=False, actor=actor, actor_role=actor_role)

    def link_many(self, links: list[Link], *, actor: str, actor_role: str) -> None:
        """Bulk load (demo set-up): one insert, one audit row per call."""
        now = datetime.now(UTC)
        v = time.time_ns()
        rows = []
        for i, lk in enumerate(links):
            if lk.relation not in RELATIONS:
                raise OrgError(f"relation must be one of {', '.join(RELATIONS)}")
            rows.append(
                {
                    "tenant_id": lk.tenant_id,
                    "relation": lk.relation,
                    "subject_id": lk.subject_id,
                    "object_id": lk.object_id,
                    "deleted": 0,
                    "changed_by": actor,
                    "changed_at": now,
                    "version": v + i,
                }
            )
        for tenant in sorted({lk.tenant_id for lk in links}):  # audited before the insert
            audit(
                self.store,
                tenant_id=tenant,
                actor_id=actor,
                actor_role=actor_role,
                action="org.link_bulk",
                resource="org_links",
                outcome="ok",
                detail={"links": sum(1 for lk in links if lk.tenant_id == tenant)},
            )
        try:
            self.store.insert("org_links", rows)
        finally:
            _OBJECTS.changed()

    def unlink(self, link: Link, *, actor: str, actor_role: str) -> None:
        self._write(link, deleted=True, actor=actor, actor_role=actor_role)

    def objects(self, tenant_id: str, relation: str, subject_id: str) -> list[str]:
        """What ``subject_id`` relates to (a manager's reports, an owner's
        programs), reused for ``ORG_CACHE_S`` unless this process writes a link."""
        key = (id(self.store), tenant_id, relation, subject_id)
        got = _OBJECTS.get(key)
        if got is not None:
            return list(got)
        writes = _OBJECTS.writes  # before the read: a write during it is not missed
        rows = self.store.query(
            "SELECT object_id FROM org_links FINAL WHERE tenant_id = {t:String}"
            " AND relation = {r:String} AND subject_id = {s:String} AND deleted = 0"
            " ORDER BY object_id",
            {"t": tenant_id, "r": relation, "s": subject_id},
        )
        found = tuple(r["object_id"] for r in rows)
        _OBJECTS.put(key, writes, found)
        return list(found)

    def links(
        self, tenant_id: str, relation: str | None = None, subject_id: str | None = None
    ) -> list[Link]:
        rows = self.store.query(
            "SELECT relation, subject_id, object_id FROM org_links FINAL"
            " WHERE tenant_id = {t:String} AND deleted = 0"
            " AND ({r:String} = '' OR relation = {r:String})"
            " AND ({s:String} = '' OR subject_id = {s:String})"
            " ORDER BY relation, subject_id, object_id",
            {"t": tenant_id, "r": relation or "", "s": subject_id or ""},
        )
        return [Link(tenant_id, r["relation"], r["subject_id"], r["object_id"]) for r in rows]
