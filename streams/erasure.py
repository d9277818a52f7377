"""Erasure in the stream: a learner's state deleted from every worker table,
and tombstones on every compacted topic keyed by the learner.

The API's deletion request (api/retention/erasure.py) deletes ClickHouse
rows and produces a request to ``control.erasure``, keyed ``tenant:user``
so it lands on the learner's partition, where their tables live. There the
worker discards (tombstones in RocksDB and the changelogs, at the next
checkpoint):

* every learner-day (its changelog is ``aggregates.learner_daily``), and
  tombstones ``scores.learner`` for every day a score of theirs can exist
  (each active day and the 21 days after it);
* their opt-out state (and tombstones ``optout.state``);
* their program-week memberships (the week's counters are counts, not
  about anyone);
* the identity links they sent; for each visitor id linked to them, a
  second request keyed ``tenant:anonymous_id`` goes to the visitor's
  partition, which discards the link and the visitor's pending events.

Dedupe ids are random client event ids that name no one: they stay until
the window sweeps them, so a retried old event is still not counted. A
later event of the same user starts from zero.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from core.keys import learner_key, learner_key_bytes
from streams.aggregates import learner_day_key
from streams.score import INACTIVE_DAYS, WINDOW_DAYS

if TYPE_CHECKING:
    from core.settings import Settings
    from streams.outputs import Outputs
    from streams.topology import Tables, Topics

log = logging.getLogger("skillstream.worker")
TOPIC = "control.erasure"


def request_erasure(bootstrap: str, settings: Settings, tenant_id: str, user_id: str,
                    request_id: str) -> None:  # fmt: skip
    """Hand a learner's erasure to the worker (acknowledged by Kafka, or raise)."""
    from confluent_kafka import Producer

    # murmur2: the partition of the learner's events (Java's partitioner, as the API's producer)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "partitioner": "murmur2_random", "log_level": 0})  # fmt: skip
    body = {"tenant_id": tenant_id, "user_id": user_id, "request_id": request_id,
            "requested_at": int(time.time() * 1000)}  # fmt: skip
    p.produce(
        settings.topic(TOPIC), json.dumps(body).encode(), learner_key_bytes(tenant_id, user_id)
    )
    if p.flush(30) != 0:
        raise RuntimeError("erasure request not acknowledged by Kafka")


class Eraser:
    def __init__(self, topics: Topics, tables: Tables, out: Outputs) -> None:
        self.topics, self.tables, self.out = topics, tables, out

    async def apply(self, request: dict[str, Any], partition: int) -> None:
        tenant = request["tenant_id"]
        if request.get("user_id"):
            n = self.erase_learner(partition, tenant, request["user_id"])
            log.warning("erased learner %s:%s: %d keys", tenant, request["user_id"], n)
        elif request.get("anonymous_id"):
            n = self.erase_visitor(partition, tenant, request["anonymous_id"])
            log.warning("erased visitor %s:%s: %d keys", tenant, request["anonymous_id"], n)

    def erase_learner(self, p: int, tenant: str, user: str) -> int:
        tb, t = self.tables, self.topics
        days = self._discard(tb.learner_day, p, f"{learner_key(tenant, user)}:", lambda k: True)
        score_days = {
            d + k for d in map(_ordinal, days) for k in range(WINDOW_DAYS + INACTIVE_DAYS + 1)
        }
        for day in sorted(score_days):
            self.out.tombstone(t.scores, learner_day_key(tenant, user, day))
        self.out.forget_learner(p, tenant, user)
        n = len(days) + len(score_days)
        n += len(self._discard(tb.optout, p, f"{tenant}|{user}", lambda k: k == f"{tenant}|{user}"))
        self.out.tombstone(t.optout, learner_key(tenant, user))
        member = (f"|a|{user}", f"|c|{user}")
        n += len(
            self._discard(tb.program_week_members, p, f"{tenant}|", lambda k: k.endswith(member))
        )
        for key, sent in tb.links_sent.items_with_prefix(p, f"{tenant}|").items():
            if sent[0] == user:
                tb.links_sent.discard(key)
                anon = key.split("|", 1)[1]
                self.out.send_now(t.erasure, learner_key(tenant, anon),
                                  {"tenant_id": tenant, "anonymous_id": anon})  # fmt: skip
                n += 1
        return n

    def erase_visitor(self, p: int, tenant: str, anon: str) -> int:
        key = f"{tenant}|{anon}"
        n = 0
        for table in (self.tables.links, self.tables.pending):
            n += len(self._discard(table, p, key, lambda k: k == key))
        return n

    @staticmethod
    def _discard(table: Any, p: int, prefix: str, match: Any) -> list[str]:
        keys = [k for k in table.items_with_prefix(p, prefix) if match(k)]
        for k in keys:
            table.discard(k)
        return keys


def _ordinal(day_key: str) -> int:
    from datetime import date

    return date.fromisoformat(day_key.rsplit(":", 1)[1]).toordinal()
