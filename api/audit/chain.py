"""Append-only, tamper-evident audit log.

Every row of ``audit_events`` is chained per tenant: ``seq`` counts 1, 2, 3...
and ``hash = sha256(prev_hash + canonical(row))`` where ``prev_hash`` is the
tenant's previous row's hash (64 zeros for the first). Editing any stored
field breaks that row's hash; deleting or inserting a row breaks the link or
the sequence. ``verify`` recomputes every chain and names the first break.

One chain per tenant and writer: each process that appends names itself
(``use_writer``; the embedded store's one process is the writer ''), and
its chain's head per tenant is cached in memory under a lock and read back
from the store on first use. Two processes against one ClickHouse server
(API replicas, job runners) thus never race for a head and fork a chain;
``verify`` checks every writer's chain. A named writer's rows hash their
writer too, so a row moved to another chain breaks. No code path updates
or deletes audit rows (retention keeps them: the log is permanent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from sinks.store import Store

log = logging.getLogger("skillstream.audit")
AUDIT_FAILURES = Counter(
    "skillstream_audit_write_failures_total",
    "Audit rows the store refused (the change they record was refused too, denials excepted)",
    ["action"],
)
# Outcomes that record a refusal, not a change: nothing happened, so a 403
# stays a 403 when the audit store fails (logged and counted instead).
REFUSALS = frozenset({"denied"})


class AuditUnavailable(RuntimeError):
    """The audit row could not be written, so the change it records must not
    happen (audit or nothing). The API answers 503 with Retry-After."""


GENESIS = "0" * 64
FIELDS = (
    "seq",
    "at",
    "tenant_id",
    "actor_id",
    "actor_role",
    "action",
    "resource",
    "outcome",
    "detail",
)


def _at_text(at: datetime) -> str:
    # DateTime64(3) keeps milliseconds: hash exactly what the store gives back.
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def canonical(row: dict[str, Any]) -> str:
    # the writer '' hashes as rows did before chains were per writer
    fields = (*FIELDS, "writer") if row.get("writer") else FIELDS
    return json.dumps({k: row[k] for k in fields}, sort_keys=True, separators=(",", ":"))


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(row)).encode()).hexdigest()


class AuditChain:
    def __init__(self, store: Store, writer: str = "") -> None:
        self.store = store
        self.writer = writer
        self._lock = threading.Lock()
        self._heads: dict[str, tuple[int, str]] = {}

    def _head(self, tenant_id: str) -> tuple[int, str]:
        if tenant_id not in self._heads:
            rows = self.store.query(
                "SELECT seq, hash FROM audit_events WHERE tenant_id = {t:String}"
                " AND writer = {w:String} AND seq > 0 ORDER BY seq DESC LIMIT 1",
                {"t": tenant_id, "w": self.writer},
            )
            self._heads[tenant_id] = (
                (int(rows[0]["seq"]), rows[0]["hash"]) if rows else (0, GENESIS)
            )
        return self._heads[tenant_id]

    def append(
        self,
        *,
        tenant_id: str,
        actor_id: str,
        actor_role: str,
        action: str,
        resource: str,
        outcome: str,
        detail: dict[str, Any] | str = "",
    ) -> dict[str, Any]:
        text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        with self._lock:
            seq, prev = self._head(tenant_id)
            row: dict[str, Any] = {
                "seq": seq + 1,
                "at": _at_text(datetime.now(UTC)),
                "tenant_id": tenant_id,
                "writer": self.writer,
                "actor_id": actor_id,
                "actor_role": actor_role,
                "action": action,
                "resource": resource,
                "outcome": outcome,
                "detail": text,
            }
            row["prev_hash"] = prev
            row["hash"] = row_hash(prev, row)
            try:
                self.store.insert("audit_events", [row])
            except Exception:
                # The head may or may not have landed: read it back next time.
                self._heads.pop(tenant_id, None)
                raise
            self._heads[tenant_id] = (row["seq"], row["hash"])
        return row

    def rows(
        self, tenant_id: str, writer: str | None = None, chunk: int = 20_000
    ) -> Iterator[dict[str, Any]]:
        """One writer's chained rows of the tenant (this chain's by default)
        in seq order, a chunk at a time (keyset)."""
        after = 0
        while True:
            got = self.store.query(
                "SELECT seq, toString(at) AS at, tenant_id, writer, actor_id, actor_role,"
                " action, resource, outcome, detail, prev_hash, hash FROM audit_events"
                " WHERE tenant_id = {t:String} AND writer = {w:String} AND seq > {after:UInt64}"
                " ORDER BY seq LIMIT {n:UInt32}",
                {"t": tenant_id, "w": self.writer if writer is None else writer,
                 "after": after, "n": chunk},
            )  # fmt: skip
            yield from got
            if len(got) < chunk:
                return
            after = int(got[-1]["seq"])

    def writers(self, tenant_id: str) -> list[str]:
        rows = self.store.query(
            "SELECT DISTINCT writer FROM audit_events WHERE tenant_id = {t:String} AND seq > 0"
            " ORDER BY writer",
            {"t": tenant_id},
        )
        return [r["writer"] for r in rows]

    def tenants(self) -> list[str]:
        return [
            r["tenant_id"]
            for r in self.store.query(
                "SELECT DISTINCT tenant_id FROM audit_events WHERE seq > 0 ORDER BY tenant_id"
            )
        ]


@dataclass(frozen=True)
class Verdict:
    tenant_id: str
    rows: int
    unchained: int  # rows written before the chain existed (seq = 0)
    broken_seq: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def verify_tenant(store: Store, tenant_id: str) -> Verdict:
    """Every writer's chain of the tenant, in turn; the first break found."""
    chain, n = chain_for(store), 0
    for writer in chain.writers(tenant_id):
        rows, broken_seq, why = _verify_chain(chain.rows(tenant_id, writer))
        n += rows
        if broken_seq is not None:
            why = f"writer {writer}: {why}" if writer else why
            return Verdict(tenant_id, n, _unchained(store, tenant_id), broken_seq, why)
    return Verdict(tenant_id, n, _unchained(store, tenant_id))


def _verify_chain(rows: Iterator[dict[str, Any]]) -> tuple[int, int | None, str]:
    """(rows read, seq of the first broken row or None, why)."""
    prev, expect, n = GENESIS, 1, 0
    for row in rows:
        seq = int(row["seq"])
        row = {**row, "seq": seq}
        n += 1
        if seq != expect:
            why = "duplicate seq" if seq < expect else f"rows {expect}..{seq - 1} missing"
            return n, seq, why
        if row["prev_hash"] != prev:
            return n, seq, "prev_hash mismatch"
        if row_hash(prev, row) != row["hash"]:
            return n, seq, "content does not match hash"
        prev, expect = row["hash"], seq + 1
    return n, None, ""


def _unchained(store: Store, tenant_id: str) -> int:
    rows = store.query(
        "SELECT count() AS n FROM audit_events WHERE tenant_id = {t:String} AND seq = 0",
        {"t": tenant_id},
    )
    return int(rows[0]["n"])


def verify(store: Store, tenant_id: str | None = None) -> list[Verdict]:
    tenants = [tenant_id] if tenant_id is not None else chain_for(store).tenants()
    return [verify_tenant(store, t) for t in tenants]


_CHAINS: weakref.WeakKeyDictionary[Any, AuditChain] = weakref.WeakKeyDictionary()
_CHAINS_LOCK = threading.Lock()


_WRITER = ""


def use_writer(name: str) -> None:
    """Name this process's chains (at start-up, before it audits anything):
    each process against a shared ClickHouse server needs a name of its own."""
    global _WRITER
    _WRITER = name


def chain_for(store: Store) -> AuditChain:
    """The one appender of this store in this process (the chain head lives there)."""
    with _CHAINS_LOCK:
        chain = _CHAINS.get(store)
        if chain is None:
            chain = _CHAINS[store] = AuditChain(store, _WRITER)
        return chain


def audit(
    store: Store,
    *,
    action: str,
    resource: str,
    outcome: str,
    detail: dict[str, Any] | str = "",
    principal: Any = None,
    tenant_id: str | None = None,
    actor_id: str | None = None,
    actor_role: str | None = None,
    undo: Callable[[], Any] | None = None,
) -> Audited:
    """Append one audit event now, before the change it records (audit or
    nothing): a failed write raises ``AuditUnavailable``, except for
    refusals, which are only logged: the request was refused either way.

    Who acted: ``principal`` (a verified token: its user, role and tenant,
    the tenant overridden by ``tenant_id`` when the action targets another),
    or ``tenant_id``, ``actor_id`` and ``actor_role`` given outright.

    ``undo``: for a change whose row needs what the change produced (an id),
    so it is made first; a failed write then undoes it before raising.

    Used as ``with audit(...):`` around the change, a block that raises adds
    a second row with outcome ``failed`` (best effort: the first row already
    names the attempt)."""
    if principal is not None:
        tenant_id = principal.tenant_id if tenant_id is None else tenant_id
        actor_id, actor_role = principal.user_id or "", principal.role
    row: dict[str, Any] = {
        "tenant_id": tenant_id,
        "actor_id": actor_id,
        "actor_role": actor_role,
        "action": action,
        "resource": resource,
        "outcome": outcome,
        "detail": detail,
    }
    try:
        _append(store, row)
    except AuditUnavailable:
        if undo is not None:
            undo()
        raise
    return Audited(store, row)


class Audited:
    """An appended row; as a context manager, records a ``failed`` row when
    the change it wraps raises."""

    def __init__(self, store: Store, row: dict[str, Any]) -> None:
        self.store = store
        self.row = row

    def __enter__(self) -> Audited:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, exc: BaseException | None, _tb: Any
    ) -> bool:
        if isinstance(exc, Exception):
            detail = self.row["detail"] or {}
            if not isinstance(detail, dict):
                detail = {"detail": detail}
            failed = {**self.row, "outcome": "failed", "detail": {**detail, "error": str(exc)}}
            try:
                _append(self.store, failed)
            except AuditUnavailable:
                log.exception("could not record that %s failed", self.row["action"])
        return False


def _append(store: Store, row: dict[str, Any]) -> None:
    action, outcome = row["action"], row["outcome"]
    log.info("%s %s %s by %s/%s", action, outcome, row["resource"], row["actor_role"],
             row["actor_id"])  # fmt: skip
    try:
        chain_for(store).append(**row)
    except Exception as exc:
        AUDIT_FAILURES.labels(action).inc()
        if outcome in REFUSALS:
            log.exception("audit write failed (refusal %s stands)", action)
            return
        # the store's own error stays in the log: callers learn only what matters to them
        log.error("audit write for %s refused by the store: %s", action, exc)
        raise AuditUnavailable(f"audit log unavailable, {action} not done") from exc
