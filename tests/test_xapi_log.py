"""The accepted-statements log (api/xapi/store.py) on the embedded store:
rows journaled and stored behind the answer, read back while they wait,
and a journal left by a crash stored by the next process (unit tier)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from api.xapi.mapping import VOIDED_VERB
from api.xapi.store import StatementLog


def _row(tenant: str, sid: str, **over) -> dict:
    now = datetime.now(UTC)
    row = {
        "tenant_id": tenant, "statement_id": sid, "content_hash": "h" + sid[:4],
        "event_name": "xapi_statement", "verb_id": "https://v.example/did", "object_id": "o",
        "activity_type": "", "voided_id": "", "learner_id": "u1", "anonymous_id": "a1",
        "score_scaled": None, "success": None, "completion": None, "duration_ms": None,
        "timestamp": now, "stored": now, "statement": f'{{"id":"{sid}"}}',
    }  # fmt: skip
    return row | over


def _stored(store, tenant: str) -> int:
    q = "SELECT count() AS n FROM xapi_statements WHERE tenant_id = {t:String}"
    return store.query(q, {"t": tenant})[0]["n"]


def test_waiting_rows_answer_reads_and_a_crashed_journal_is_stored(store, tmp_path):
    tid, a, b = f"l_{uuid.uuid4().hex[:8]}", str(uuid.uuid4()), str(uuid.uuid4())
    crashed = StatementLog(store, tmp_path, flush_s=3600)  # never flushes in this test
    crashed.record([_row(tid, a), _row(tid, b, verb_id=VOIDED_VERB, voided_id=a)])
    assert _stored(store, tid) == 0
    assert crashed.get(tid, a) == {"id": a}  # GET right after POST: from the queue
    assert crashed.is_voided(tid, a) and not crashed.is_voided(tid, b)
    assert crashed.hashes(tid, [a, "x"]) == {a: "h" + a[:4]}
    assert len(list(tmp_path.glob("*.jsonl"))) == 1
    # the next process finds the journal (same pid here: replayed as a dead one's)
    StatementLog(store, tmp_path)
    assert _stored(store, tid) == 2 and not list(tmp_path.glob("*.jsonl"))


def test_rows_are_stored_in_the_background_and_the_segment_goes(store, tmp_path):
    tid, a = f"l_{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    log = StatementLog(store, tmp_path, flush_s=0.01)
    log.record([_row(tid, a)])
    log.close()
    assert _stored(store, tid) == 1 and not list(tmp_path.glob("*.jsonl"))
    assert log.get(tid, a) == {"id": a}  # now from the store
