"""The audit chain with several processes against one store: each writer
(an API replica, a job runner) extends chains of its own, so concurrent
appends for one tenant never fork; two processes sharing one chain would,
which is what the writers are for (the negative control below)."""

from __future__ import annotations

import threading
import uuid

from api.audit.chain import AuditChain, verify_tenant
from api.audit.export import audit_rows

PER_WRITER = 150


def _append(chain: AuditChain, tenant_id: str, n: int) -> None:
    for i in range(n):
        chain.append(tenant_id=tenant_id, actor_id="u", actor_role="company_admin",
                     action="test.append", resource=f"r:{i}", outcome="ok")  # fmt: skip


def test_concurrent_writers_keep_every_chain_whole(store):
    tenant = f"t_{uuid.uuid4().hex[:12]}"
    chains = [AuditChain(store, f"api-host{i}-1") for i in range(2)] + [AuditChain(store, "")]
    threads = [threading.Thread(target=_append, args=(c, tenant, PER_WRITER)) for c in chains]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdict = verify_tenant(store, tenant)
    assert verdict.ok, verdict
    assert verdict.rows == 3 * PER_WRITER
    exported = list(audit_rows(store, tenant))
    assert len(exported) == 3 * PER_WRITER
    order = [(r["writer"], int(r["seq"])) for r in exported]
    assert order == sorted(order)  # chain after chain, each in seq order


def test_two_processes_on_one_chain_fork_it_and_verify_says_so(store):
    tenant = f"t_{uuid.uuid4().hex[:12]}"
    a, b = AuditChain(store, ""), AuditChain(store, "")  # one chain, two heads
    _append(b, tenant, 1)
    _append(a, tenant, 1)
    _append(b, tenant, 1)  # b's head is stale: a second row 2
    verdict = verify_tenant(store, tenant)
    assert not verdict.ok and verdict.broken_seq == 2, verdict


def test_a_row_moved_to_another_writers_chain_breaks_it(store):
    tenant = f"t_{uuid.uuid4().hex[:12]}"
    _append(AuditChain(store, "jobs-h-7"), tenant, 3)
    store.command(
        "ALTER TABLE audit_events UPDATE writer = 'jobs-h-8' WHERE tenant_id = {t:String} "
        "AND seq = 1 SETTINGS mutations_sync = 1",
        {"t": tenant},
    )
    verdict = verify_tenant(store, tenant)
    assert not verdict.ok, verdict
