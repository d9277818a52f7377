"""The record key every per-learner topic is partitioned by.

``tenant:learner`` (the learner being a user id, or an anonymous id until
it is linked) puts a learner's events, dedupe entries, identity and scores
on one partition: every sender and reader spells it through here.
"""

from __future__ import annotations


def learner_key(tenant_id: str, learner_id: str) -> str:
    return f"{tenant_id}:{learner_id}"


def learner_key_bytes(tenant_id: str, learner_id: str) -> bytes:
    return learner_key(tenant_id, learner_id).encode()
