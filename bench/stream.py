"""Stream benchmark: pre-loaded raw events → worker → sink → ClickHouse.

Pre-loads N realistic events (demo population, fixed seed; 1% duplicates,
2% late, anonymous visitors identified later) into the raw topic, then
starts the worker (its own process) and the sink (this process, owner of a
fresh embedded ClickHouse) and measures the time until every event is
queryable. Reports events/s and the worker's peak RSS. The baseline in the
same run: a plain confluent-kafka consumer reading the same topic and
decoding every record (the floor any Python stream processor pays).

    python -m bench.stream [--events 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ops.settings import PROJECT_ROOT, Settings

RESULTS = PROJECT_ROOT / "bench" / "results"


def generate(n: int, seed: int = 5) -> list[dict]:
    from ops.demo import Population

    rng = random.Random(seed)
    pop = Population.build(seed=seed, tenants=("bench",), learners_per_tenant=5000)
    now = datetime.now(UTC)
    for lr in pop.learners:
        lr.propensity, lr.drops_after_days = max(lr.propensity, 0.5), None
        lr.enrolled_at = now - timedelta(days=6)
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
    for i in rng.sample(range(len(events)), k=len(events) // 50):  # 2% late
        events.append(events[i])
        events[i] = None
    events = [e for e in events if e is not None]
    for i in rng.sample(range(len(events)), k=len(events) // 100):  # 1% duplicates
        events.insert(min(len(events), i + rng.randint(1, 500)), dict(events[i]))
    return events


def preload(bootstrap: str, settings: Settings, events: list[dict]) -> int:
    from confluent_kafka import Producer

    from api.ingest.validate import Bounds, validate_event
    from schemas.codec import SingleObjectCodec

    codec = SingleObjectCodec()
    bounds = Bounds(300, 7 * 86400)
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 500_000,
        }
    )
    topic = settings.topic("events.raw")
    received = datetime.now(UTC)
    for ev in events:
        rec, errs = validate_event(
            ev, tenant_id="t_bench", pii_salt="s", received_at=received, bounds=bounds
        )
        if errs:
            raise SystemExit(f"generator produced an invalid event: {errs}")
        key = f"t_bench:{rec['user_id'] or rec['anonymous_id']}".encode()
        while True:
            try:
                p.produce(topic, codec.encode(rec), key)
                break
            except BufferError:
                p.poll(0.1)
    p.flush(120)
    return len({e["client_event_id"] for e in events})


def baseline_decode(bootstrap: str, topic: str, n: int) -> float:
    """Seconds for a plain consumer to read and decode every raw record."""
    from confluent_kafka import Consumer

    from schemas.codec import SingleObjectCodec

    codec = SingleObjectCodec()
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-baseline-{time.time()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    seen, t0 = 0, time.perf_counter()
    while seen < n:
        for m in c.consume(5000, timeout=1):
            if not m.error():
                codec.decode(m.value())
                seen += 1
    c.close()
    return time.perf_counter() - t0


def worker_caught_up(bootstrap: str, settings: Settings) -> bool:
    """The worker's group has committed every raw record."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{settings.topic_prefix}-worker"})
    try:
        name = settings.topic("events.raw")
        md = c.list_topics(name, timeout=10)
        parts = [TopicPartition(name, p) for p in md.topics[name].partitions]
        committed = c.committed(parts, timeout=10)
        return all(tp.offset >= c.get_watermark_offsets(tp, timeout=10)[1] for tp in committed)
    finally:
        c.close()


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def steady(bootstrap: str, settings: Settings, events: list[dict], rate: float, stop) -> int:
    """Produce ``events`` at ``rate`` per second, received_at = send time."""
    from confluent_kafka import Producer

    from api.ingest.validate import Bounds, validate_event
    from schemas.codec import SingleObjectCodec

    codec, bounds = SingleObjectCodec(), Bounds(300, 7 * 86400)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"})
    topic, sent, t0 = settings.topic("events.raw"), 0, time.perf_counter()
    for ev in events:
        if stop.is_set():
            break
        due = t0 + sent / rate
        if due > time.perf_counter():
            time.sleep(due - time.perf_counter())
        rec, _ = validate_event(
            ev, tenant_id="t_bench", pii_salt="s", received_at=datetime.now(UTC), bounds=bounds
        )
        p.produce(
            topic, codec.encode(rec), f"t_bench:{rec['user_id'] or rec['anonymous_id']}".encode()
        )
        p.poll(0)
        sent += 1
    p.flush(60)
    return sent


def bench_settings(tag: str) -> tuple[str, Settings]:
    """The bench Kafka (started once, re-used) and fresh topics and run dir."""
    from ops.kafka_launcher import KafkaCluster
    from ops.topics import ensure_topics

    base = Settings()
    cluster = KafkaCluster.ensure(
        PROJECT_ROOT / ".run" / "bench-kafka", base.cache_dir, base.kafka_version
    )
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-{tag}-"))
    settings = Settings(
        SKILLSTREAM_RUN_DIR=run_dir,
        KAFKA_BOOTSTRAP=cluster.bootstrap,
        TOPIC_PREFIX=f"{tag}{int(time.time())}",
    )
    ensure_topics(cluster.bootstrap, settings)
    return cluster.bootstrap, settings


def start_worker(bootstrap: str, settings: Settings) -> subprocess.Popen:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": bootstrap,
        "TOPIC_PREFIX": settings.topic_prefix,
        "SKILLSTREAM_RUN_DIR": str(settings.run_dir),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "streams.worker"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_steady(rate: float, duration_s: float) -> dict:
    import threading

    from sinks.sink import Sink
    from sinks.store import open_store

    bootstrap, settings = bench_settings("bf")
    events = generate(int(rate * duration_s))
    store = open_store(None, settings.chdb_path)
    sink = Sink(settings, store, bootstrap)
    worker = start_worker(bootstrap, settings)
    sink.start()
    time.sleep(10)  # worker joins its group
    stop = threading.Event()
    sent = steady(bootstrap, settings, events, rate, stop)
    time.sleep(15)  # drain
    worker.terminate()
    worker.wait(60)
    sink.stop()
    q = store.query(
        "SELECT count() AS n, quantiles(0.5, 0.99)(dateDiff('millisecond', received_at, sunk_at))"
        " AS q FROM events"
    )[0]
    return {
        "scenario": "freshness",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rate_per_s": rate,
        "sent": sent,
        "queryable": int(q["n"]),
        "p50_ms": q["q"][0],
        "p99_ms": q["q"][1],
    }


def run(n_events: int, scale: str) -> dict:
    from sinks.sink import Sink
    from sinks.store import open_store

    bootstrap, settings = bench_settings("bs")
    events = generate(n_events)
    t = time.perf_counter()
    unique = preload(bootstrap, settings, events)
    preload_s = time.perf_counter() - t
    baseline_s = baseline_decode(bootstrap, settings.topic("events.raw"), len(events))

    store = open_store(None, settings.chdb_path)
    sink = Sink(settings, store, bootstrap)
    t0 = time.perf_counter()
    worker = start_worker(bootstrap, settings)
    sink.start()
    rss = 0.0
    done_at = None
    worker_done_at = None
    try:
        while time.perf_counter() - t0 < 3600:
            time.sleep(2)
            rss = max(rss, peak_rss_mb(worker.pid))
            if worker_done_at is None and worker_caught_up(bootstrap, settings):
                worker_done_at = time.perf_counter()
            n = store.query("SELECT count() AS n FROM events FINAL")[0]["n"]
            if int(n) >= unique:
                done_at = time.perf_counter()
                break
    finally:
        worker.terminate()
        worker.wait(60)
        sink.stop()
    elapsed = (done_at or time.perf_counter()) - t0
    return {
        "scenario": "stream",
        "scale": scale,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "events": len(events),
        "unique_events": unique,
        "complete": done_at is not None,
        "skillstream": {
            "seconds_to_queryable": round(elapsed, 1),
            "events_per_s": round(len(events) / elapsed),
            "worker_peak_rss_mb": round(rss, 1),
            "seconds_worker_consumed_all": round((worker_done_at or t0) - t0, 1),
        },
        "baseline_plain_consumer_decode": {
            "seconds": round(baseline_s, 1),
            "events_per_s": round(len(events) / baseline_s),
        },
        "ratio_skillstream_vs_decode_only": round(baseline_s / elapsed, 3),
        "preload_s": round(preload_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--scale", choices=["small", "full"], default=None)
    ap.add_argument("--rate", type=float, default=None, help="steady-rate freshness mode (ev/s)")
    ap.add_argument("--duration", type=float, default=60, help="seconds of steady load")
    args = ap.parse_args(argv)
    if args.rate:
        res = run_steady(args.rate, args.duration)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"{res['date'][:10]}-freshness-{int(args.rate)}.json"
        out.write_text(json.dumps(res, indent=2) + "\n")
        print(json.dumps(res))
        return 0
    n = {"small": 20_000, "full": 1_000_000}.get(args.scale, args.events)
    res = run(n, args.scale or "custom")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{res['date'][:10]}-stream.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    s, b = res["skillstream"], res["baseline_plain_consumer_decode"]
    print(f"{'':34}{'events/s':>10}")
    print(f"{'skillstream (to queryable)':34}{s['events_per_s']:>10}")
    print(f"{'plain consumer, decode only':34}{b['events_per_s']:>10}")
    print(f"ratio skillstream / decode-only: {res['ratio_skillstream_vs_decode_only']}")
    print(f"worker peak RSS: {s['worker_peak_rss_mb']} MB; complete: {res['complete']}")
    print(f"written to {out.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
