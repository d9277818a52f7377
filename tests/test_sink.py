"""The sink on its own: store outages are retried, crashes replay nothing twice
(an open plan is replayed with exactly its ranges, sinks/sink.py)."""

from __future__ import annotations

import json
import time

import orjson
from confluent_kafka import Producer

from core.topics import ensure_topics
from sinks.sink import STORE_ERRORS, Sink
from sinks.store import StoreError


class FlakyStore:
    """The real store, but the first ``failures`` inserts fail (ClickHouse down)."""

    def __init__(self, store, failures: int) -> None:
        self._store, self.failures, self.kind = store, failures, store.kind

    def insert(self, table, rows, dedup_token=None):
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("connection refused (simulated outage)")
        return self._store.insert(table, rows, dedup_token)

    def __getattr__(self, name):
        return getattr(self._store, name)


def _produce_optout_rows(bootstrap, topic, tenant, n, first: int = 0) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(first, first + n):
        row = {"tenant_id": tenant, "user_id": f"u{i}", "opted_out": i % 2 == 0,
               "changed_at": 1_700_000_000_000 + i}  # fmt: skip
        p.produce(topic, json.dumps(row).encode(), f"{tenant}:u{i}".encode())
    assert p.flush(15) == 0


def _count(store, tenant) -> int:
    rows = store.query(
        "SELECT count() AS n FROM optout_state WHERE tenant_id = {t:String}", {"t": tenant}
    )
    return int(rows[0]["n"])


def _wait(fn, timeout=60) -> None:
    deadline = time.monotonic() + timeout
    while not fn() and time.monotonic() < deadline:
        time.sleep(0.2)


def test_store_outage_is_retried_and_nothing_is_lost(settings, store, kafka_bootstrap, unique):
    ensure_topics(kafka_bootstrap, settings)
    tenant = f"t_{unique}"
    _produce_optout_rows(kafka_bootstrap, settings.topic("optout.state"), tenant, 300)
    errors_before = STORE_ERRORS._value.get()
    sink = Sink(settings, FlakyStore(store, failures=3), kafka_bootstrap)
    sink.start()
    try:
        _wait(lambda: _count(store, tenant) >= 300)
    finally:
        sink.stop()
    assert _count(store, tenant) == 300
    assert STORE_ERRORS._value.get() - errors_before >= 3


def test_crash_between_insert_and_commit_replays_nothing(settings, store, kafka_bootstrap, unique):
    ensure_topics(kafka_bootstrap, settings)
    tenant = f"t_{unique}"
    _produce_optout_rows(kafka_bootstrap, settings.topic("optout.state"), tenant, 200)
    first = Sink(settings, store, kafka_bootstrap)
    first.crash_after_insert = True
    first.start()
    _wait(lambda: not first._thread.is_alive())
    assert not first._thread.is_alive() and _count(store, tenant) > 0
    # More records arrive meanwhile: a replay that read on past the crashed
    # round would insert a different block (another token) and duplicate it.
    _produce_optout_rows(kafka_bootstrap, settings.topic("optout.state"), tenant, 200, first=200)
    second = Sink(settings, store, kafka_bootstrap)
    second.start()
    try:
        _wait(lambda: _count(store, tenant) >= 400)
        time.sleep(2)  # anything replayed twice would show up now
    finally:
        second.stop()
    # plain count (no FINAL): no row was inserted twice
    assert _count(store, tenant) == 400
    assert second.rounds_written >= 2  # the replayed round, then the new records


def test_undecodable_rows_are_dead_lettered_with_the_reason(
    settings, store, kafka_bootstrap, unique
):
    """A derived record that is not JSON, or lacks a column, is neither
    written nor dropped: it goes to the dead-letter topic with the sink's
    step and why; its good neighbours land and tombstones stay skipped."""
    from ops import dlq

    ensure_topics(kafka_bootstrap, settings)
    tenant, topic = f"t_{unique}", settings.topic("optout.state")
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    _produce_optout_rows(kafka_bootstrap, topic, tenant, 2)
    p.produce(topic, b"{not json", f"{tenant}:bad1".encode(), headers=[("tenant_id", b"x")])
    p.produce(topic, json.dumps({"tenant_id": tenant}).encode(), f"{tenant}:bad2".encode())
    p.produce(topic, None, f"{tenant}:gone".encode())  # a tombstone: skipped, not a letter
    # a record of rows (as the worker writes a record's clean events): its bad row alone
    ok = [
        {"tenant_id": tenant, "user_id": f"b{i}", "opted_out": True, "changed_at": 1}
        for i in (0, 1)
    ]
    p.produce(topic, json.dumps([ok[0], {"tenant_id": tenant, "n": 3}, ok[1]]).encode(), b"k")
    assert p.flush(15) == 0
    _produce_optout_rows(kafka_bootstrap, topic, tenant, 2, first=2)
    sink = Sink(settings, store, kafka_bootstrap)
    sink.start()
    dead = settings.topic("events.dead_letter")
    letters: list = []

    def written_and_lettered() -> bool:
        letters[:] = dlq.list_dead_letters(kafka_bootstrap, dead)
        return _count(store, tenant) >= 6 and len(letters) >= 3

    try:
        _wait(written_and_lettered)
    finally:
        sink.stop()
    assert _count(store, tenant) == 6
    by_value = {d.value: d for d in letters}
    row_alone = orjson.dumps({"tenant_id": tenant, "n": 3})
    assert set(by_value) == {b"{not json", json.dumps({"tenant_id": tenant}).encode(), row_alone}
    assert by_value[row_alone].h("dlq.source_index") == "1"
    assert by_value[row_alone].h("dlq.error") == "optout_state: KeyError: 'user_id'"
    garbled, partial = by_value[b"{not json"], by_value[json.dumps({"tenant_id": tenant}).encode()]
    assert garbled.h("dlq.step") == partial.h("dlq.step") == "sink.optout_state"
    assert garbled.h("dlq.error").startswith("optout_state: JSONDecodeError")
    assert partial.h("dlq.error") == "optout_state: KeyError: 'user_id'"
    assert garbled.h("dlq.source_topic") == topic and garbled.h("tenant_id") == "x"
    assert garbled.key == f"{tenant}:bad1".encode()
