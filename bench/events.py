"""Benchmark events from the demo generator (fixed seed), and their producers.

The producers write what the front door writes: requests of 100 events
(as an SDK sends them), each validated and grouped by partition into batch
records (``api/ingest/batches.py``). Unlike the front door, a duplicate
inside one request is kept: the pipelines' dedupe is what is measured.

``generate`` spreads the demo population's activity over the last five
days, with 1% duplicates (re-sent up to 500 events later), 2% late events
(moved to the end of the stream) and visitors who browse anonymously on
their first day and are identified when they sign in.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from threading import Event

from core.keys import learner_key_bytes

TENANT = "t_bench"


def generate(n: int, seed: int = 5, duplicates: bool = True, late: bool = True) -> list[dict]:
    from ops.demo import Population

    rng = random.Random(seed)
    pop = Population.build(seed=seed, tenants=("bench",), learners_per_tenant=5000)
    now = datetime.now(UTC)
    for lr in pop.learners:
        lr.propensity, lr.drops_after_days = max(lr.propensity, 0.5), None
        # One learner in eight joins during the window: its first day has
        # anonymous browsing that is identified at sign-in.
        joins = rng.random() < 0.125
        lr.enrolled_at = now - timedelta(days=rng.uniform(0, 5) if joins else 6)
    events: list[dict] = []
    while len(events) < n:
        at = now - timedelta(seconds=rng.uniform(0, 5 * 86400))
        for _, ev in pop.events_at(at, 200):
            if ev["event_name"].startswith("settings_tracking"):
                continue  # opt-outs would make the expected count depend on order
            ev["opt_out_status"] = False
            events.append(ev)
    events = events[:n]
    events.sort(key=lambda e: e["event_timestamp"])
    if late:
        for i in rng.sample(range(len(events)), k=len(events) // 50):
            events.append(events[i])
            events[i] = None
        events = [e for e in events if e is not None]
    if duplicates:
        for i in rng.sample(range(len(events)), k=len(events) // 100):
            events.insert(min(len(events), i + rng.randint(1, 500)), dict(events[i]))
    return events


def expected_counted(events: Iterable[dict]) -> int:
    """Distinct events that end up counted for a learner: identified ones,
    and anonymous ones whose visitor signs in at some point."""
    events = list(events)
    linked = {e["anonymous_id"] for e in events if e.get("user_id")}
    ids = {e["client_event_id"] for e in events if e.get("user_id") or e["anonymous_id"] in linked}
    return len(ids)


REQUEST_EVENTS = 100  # events per request, as an SDK batches them


def _producer(bootstrap: str, linger_ms: int):
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
    )


def topic_partitions(bootstrap: str, topic: str) -> int:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions)


def _validated(ev: dict, tenant: str, received_at: datetime, bounds) -> dict:
    """Validated exactly as the front door does it."""
    from api.ingest.validate import validate_event

    rec, errs = validate_event(
        ev, tenant_id=tenant, pii_salt="s", received_at=received_at, bounds=bounds
    )
    if errs:
        raise SystemExit(f"generator produced an invalid event: {errs}")
    return rec


class Requests:
    """Writes requests of events as the front door does: validated, grouped
    by the partition of each event's ``tenant:learner`` key, one batch
    record per group (no key, an explicit partition), stamped with the
    request's receipt."""

    def __init__(self, bootstrap: str, topic: str, tenant: str, linger_ms: int) -> None:
        from api.ingest.validate import Bounds
        from schemas.codec import SingleObjectCodec

        self.topic, self.tenant = topic, tenant
        self.codec, self.bounds = SingleObjectCodec(), Bounds(300, 7 * 86400)
        self.partitions = topic_partitions(bootstrap, topic)
        self.producer = _producer(bootstrap, linger_ms)
        self.headers = [("tenant_id", tenant.encode())]
        self.records = 0

    def send(self, events: list[dict], received_at: datetime) -> None:
        from api.ingest.batches import encode_groups

        recs = [_validated(ev, self.tenant, received_at, self.bounds) for ev in events]
        keys = [learner_key_bytes(self.tenant, r["user_id"] or r["anonymous_id"]) for r in recs]
        ts = int(received_at.timestamp() * 1000)
        for g in encode_groups(recs, keys, self.partitions, self.codec.encode_batch):
            self._produce(g.value, g.partition, ts)
            self.records += 1
        self.producer.poll(0)

    def _produce(self, value: bytes, partition: int, ts: int) -> None:
        while True:
            try:
                self.producer.produce(
                    self.topic, value, None, partition=partition, headers=self.headers, timestamp=ts
                )
                return
            except BufferError:
                self.producer.poll(0.1)

    def flush(self, timeout_s: float) -> int:
        return self.producer.flush(timeout_s)


def requests_of(events: list[dict], size: int = REQUEST_EVENTS) -> Iterator[list[dict]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


def preload(bootstrap: str, topic: str, events: list[dict], tenant: str = TENANT) -> int:
    """Write ``events`` as requests of 100; returns the records written."""
    out = Requests(bootstrap, topic, tenant, 20)
    received = datetime.now(UTC)
    for request in requests_of(events):
        out.send(request, received)
    if out.flush(120):
        raise RuntimeError("preload not acknowledged by Kafka")
    return out.records


def steady(
    bootstrap: str, topic: str, events: list[dict], rate: float, tenant: str, stop: Event
) -> tuple[int, float]:
    """Send ``events`` at ``rate`` per second in requests of 100 (fewer when
    the rate is below 100/s: one request a second), each request when its
    first event is due, received_at = send time.
    Returns (sent, seconds it took)."""
    out = Requests(bootstrap, topic, tenant, 5)
    size = max(1, min(REQUEST_EVENTS, int(rate)))
    sent, t0 = 0, time.perf_counter()
    for request in requests_of(events, size):
        if stop.is_set():
            break
        wait = t0 + sent / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        out.send(request, datetime.now(UTC))
        sent += len(request)
    # the last request stands for the interval its events span
    time.sleep(max(0.0, t0 + sent / rate - time.perf_counter()))
    elapsed = time.perf_counter() - t0
    out.flush(60)
    return sent, elapsed
