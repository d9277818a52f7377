"""Accepted xAPI statements (``xapi_statements``) under erasure, the
retention purge and legal holds, on the embedded store (unit tier)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from api.retention.erasure import erase_user
from api.retention.holds import place_hold
from api.retention.policies import set_policy
from api.retention.purge import purge_tenant
from core.settings import Settings


def _st(tenant: str, learner: str | None, anon: str, at: datetime, event: str) -> dict:
    sid = str(uuid.uuid4())
    return {
        "tenant_id": tenant, "statement_id": sid, "content_hash": "h", "event_name": event,
        "verb_id": "http://adlnet.gov/expapi/verbs/completed", "object_id": "http://x/a",
        "activity_type": "", "voided_id": "", "learner_id": learner, "anonymous_id": anon,
        "score_scaled": None, "success": None, "completion": 1, "duration_ms": None,
        "timestamp": at, "stored": at, "statement": f'{{"id":"{sid}"}}',
    }  # fmt: skip


def _left(store, tid: str) -> list[tuple[str | None, str]]:
    rows = store.query(
        "SELECT learner_id, anonymous_id FROM xapi_statements WHERE tenant_id = {t:String}",
        {"t": tid},
    )
    return sorted((r["learner_id"], r["anonymous_id"]) for r in rows)


def test_erasure_removes_a_learners_statements_by_account_and_linked_visitor_id(store):
    tid, now = f"x_{uuid.uuid4().hex[:10]}", datetime.now(UTC)
    store.insert("xapi_statements", [
        _st(tid, "u1", "a1", now, "lesson_completed"),
        _st(tid, None, "mbox-of-u1", now, "lesson_completed"),  # an mbox actor, linked below
        _st(tid, "u2", "a2", now, "lesson_completed"),
    ])  # fmt: skip
    store.insert("identity_links", [{"tenant_id": tid, "anonymous_id": "mbox-of-u1",
                                     "user_id": "u1", "linked_at": now}])  # fmt: skip
    req = erase_user(store, None, tenant_id=tid, user_id="u1", actor_id="t", actor_role="t")
    assert req.status == "completed" and req.removed["xapi_statements"] == 2
    assert _left(store, tid) == [("u2", "a2")]


def test_purge_ages_statements_as_their_events_and_keeps_held_ones(store):
    s, tid = Settings(), f"x_{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC).replace(microsecond=0)
    old, new = now - timedelta(days=10), now - timedelta(days=1)
    store.insert("xapi_statements", [
        _st(tid, "u1", "a1", old, "lesson_completed"),  # past retention: goes
        _st(tid, "u1", "a1", new, "lesson_completed"),  # within: stays
        _st(tid, "u1", "a1", old, "session_started"),  # its own, longer retention: stays
        _st(tid, "held", "a3", old, "lesson_completed"),  # under a user hold: stays
    ])  # fmt: skip
    set_policy(store, s, tenant_id=tid, subject="lesson_completed", days=5,
               actor_id="t", actor_role="t")  # fmt: skip
    set_policy(store, s, tenant_id=tid, subject="session_started", days=30,
               actor_id="t", actor_role="t")  # fmt: skip
    place_hold(store, tenant_id=tid, kind="user", user_id="held", from_ts=None, to_ts=None,
               reason="case", actor_id="t", actor_role="t")  # fmt: skip
    rep = purge_tenant(store, s, None, tid, now)
    assert rep.removed["xapi_statements"] == 1 and rep.kept_on_hold["xapi_statements"] == 1
    assert _left(store, tid) == [("held", "a3"), ("u1", "a1"), ("u1", "a1")]
    # a held user's statements are not erased either: the whole request is refused
    req = erase_user(store, None, tenant_id=tid, user_id="held", actor_id="t", actor_role="t")
    assert req.status == "refused" and len(_left(store, tid)) == 3
