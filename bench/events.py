"""Benchmark events from the demo generator (fixed seed), and their producers.

``generate`` spreads the demo population's activity over the last five
days, with 1% duplicates (re-sent up to 500 events later), 2% late events
(moved to the end of the stream) and visitors who browse anonymously on
their first day and are identified when they sign in.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
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


def _producer(bootstrap: str, linger_ms: int):
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 500_000,
        }
    )


def _encoded(ev: dict, tenant: str, received_at: datetime, codec, bounds) -> tuple[bytes, bytes]:
    """Validated and Avro-encoded exactly as the front door does it."""
    from api.ingest.validate import validate_event

    rec, errs = validate_event(
        ev, tenant_id=tenant, pii_salt="s", received_at=received_at, bounds=bounds
    )
    if errs:
        raise SystemExit(f"generator produced an invalid event: {errs}")
    return codec.encode(rec), learner_key_bytes(tenant, rec["user_id"] or rec["anonymous_id"])


def preload(bootstrap: str, topic: str, events: list[dict], tenant: str = TENANT) -> None:
    from api.ingest.validate import Bounds
    from schemas.codec import SingleObjectCodec

    codec, bounds, p = SingleObjectCodec(), Bounds(300, 7 * 86400), _producer(bootstrap, 20)
    received = datetime.now(UTC)
    for ev in events:
        value, key = _encoded(ev, tenant, received, codec, bounds)
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.1)
    if p.flush(120):
        raise RuntimeError("preload not acknowledged by Kafka")


def steady(
    bootstrap: str, topic: str, events: list[dict], rate: float, tenant: str, stop: Event
) -> tuple[int, float]:
    """Produce ``events`` at ``rate`` per second, received_at = send time.
    Returns (sent, seconds it took)."""
    from api.ingest.validate import Bounds
    from schemas.codec import SingleObjectCodec

    codec, bounds, p = SingleObjectCodec(), Bounds(300, 7 * 86400), _producer(bootstrap, 5)
    sent, t0 = 0, time.perf_counter()
    for ev in events:
        if stop.is_set():
            break
        wait = t0 + sent / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        value, key = _encoded(ev, tenant, datetime.now(UTC), codec, bounds)
        p.produce(topic, value, key)
        p.poll(0)
        sent += 1
    elapsed = time.perf_counter() - t0
    p.flush(60)
    return sent, elapsed
