"""Ingest benchmark: the HTTP front door vs a plain confluent-kafka producer.

Both sides get the same realistic events (demo population, fixed seed) on the
same machine in the same run:

* **front door**: a load generator in another process posts 100-event
  batches to ``POST /v1/events/batch`` over loopback with several concurrent
  connections; accepted events/s and p50/p99 request latency.
* **baseline**: another process validates and Avro-encodes the same events
  and produces them straight to Kafka (idempotent, acks=all): the ceiling.

The ratio front door / baseline is the figure that matters; absolute numbers
drift on shared machines.

    python -m bench.ingest [--events 50000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from ops.settings import PROJECT_ROOT, Settings

RESULTS = PROJECT_ROOT / "bench" / "results"


def make_events(n: int, seed: int = 11) -> list[dict]:
    from ops.demo import Population

    pop = Population.build(seed=seed, tenants=("bench",), learners_per_tenant=2000)
    # Every learner active and "now": the benchmark measures the door, not the rhythm.
    for lr in pop.learners:
        lr.propensity, lr.drops_after_days = 1.0, None
        lr.enrolled_at = datetime(2000, 1, 1, tzinfo=UTC)
    events: list[dict] = []
    while len(events) < n:
        events += [ev for _, ev in pop.events_at(datetime.now(UTC), 1000)]
    return events[:n]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


# --- front door load generator (runs in its own process) --------------------
def _load_generator(url: str, key: str, batches: list[list[dict]], conc: int, out) -> None:
    import httpx

    async def run() -> dict:
        queue: asyncio.Queue = asyncio.Queue()
        for b in batches:
            queue.put_nowait(b)
        latencies: list[float] = []
        accepted = 0
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

            async def worker() -> None:
                nonlocal accepted
                while not queue.empty():
                    batch = queue.get_nowait()
                    t = time.perf_counter()
                    r = await client.post(
                        "/v1/events/batch",
                        content=json.dumps({"events": batch}),
                        headers={
                            "Authorization": f"Bearer {key}",
                            "Content-Type": "application/json",
                        },
                    )
                    latencies.append(time.perf_counter() - t)
                    r.raise_for_status()
                    accepted += len(r.json()["accepted"])

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            elapsed = time.perf_counter() - t0
        return {"accepted": accepted, "elapsed_s": elapsed, "latencies": latencies}

    out.put(asyncio.run(run()))


# --- baseline: validate + encode + produce directly (its own process) -------
def _raw_producer(bootstrap: str, topic: str, events: list[dict], out) -> None:
    from confluent_kafka import Producer

    from api.ingest.validate import Bounds, validate_event
    from schemas.codec import SingleObjectCodec

    codec = SingleObjectCodec()
    bounds = Bounds(300, 7 * 86400)
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    acked = 0

    def on_delivery(err, _msg) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    t0 = time.perf_counter()
    for ev in events:
        rec, errs = validate_event(
            ev, tenant_id="t_bench", pii_salt="s", received_at=datetime.now(UTC), bounds=bounds
        )
        if errs:
            continue
        key = f"t_bench:{rec['user_id'] or rec['anonymous_id']}".encode()
        while True:
            try:
                p.produce(topic, codec.encode(rec), key, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(60)
    out.put({"accepted": acked, "elapsed_s": time.perf_counter() - t0})


def _in_process(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, q))
    proc.start()
    result = q.get(timeout=1800)
    proc.join(60)
    return result


def run(n_events: int, concurrency: int, scale: str = "custom") -> dict:
    from ops.control import HttpControl
    from ops.kafka_launcher import KafkaCluster, free_port
    from ops.secrets import load_secrets
    from ops.stack import wait_healthy
    from ops.topics import ensure_topics

    base = Settings()
    cluster = KafkaCluster.ensure(
        PROJECT_ROOT / ".run" / "bench-kafka", base.cache_dir, base.kafka_version
    )
    run_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    port = free_port()
    prefix = f"bench{int(time.time())}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": cluster.bootstrap,
        "API_PORT": str(port),
        "SKILLSTREAM_RUN_DIR": str(run_dir),
        "TOPIC_PREFIX": prefix,
        "INGEST_RATE_PER_S": "0",
    }
    settings = Settings(
        SKILLSTREAM_RUN_DIR=run_dir, KAFKA_BOOTSTRAP=cluster.bootstrap, TOPIC_PREFIX=prefix
    )
    ensure_topics(cluster.bootstrap, settings, {"events.raw": {}, "bench.baseline": {}})
    api = subprocess.Popen(
        [sys.executable, "-m", "api.main"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        from ops.stack import Child

        wait_healthy(url, [Child("api", api, run_dir / "api.log")])
        key = HttpControl(url, load_secrets(settings).admin_secret).create_tenant("bench")[1]
        events = make_events(n_events)
        batches = [events[i : i + 100] for i in range(0, len(events), 100)]
        door = _in_process(_load_generator, url, key, batches, concurrency)
        base_res = _in_process(
            _raw_producer, cluster.bootstrap, settings.topic("bench.baseline"), events
        )
    finally:
        api.terminate()
        api.wait(30)
    lat = door.pop("latencies")
    door_rate = door["accepted"] / door["elapsed_s"]
    base_rate = base_res["accepted"] / base_res["elapsed_s"]
    result = {
        "scenario": "ingest",
        "scale": scale,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "events": n_events,
        "batch_size": 100,
        "concurrency": concurrency,
        "front_door": {
            **door,
            "events_per_s": round(door_rate),
            "p50_ms": round(percentile(lat, 50) * 1000, 1),
            "p99_ms": round(percentile(lat, 99) * 1000, 1),
        },
        "baseline_raw_producer": {**base_res, "events_per_s": round(base_rate)},
        "ratio_front_door_vs_raw": round(door_rate / base_rate, 3),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--scale", choices=["small", "full"], default=None)
    args = ap.parse_args(argv)
    n = {"small": 5_000, "full": 200_000}.get(args.scale, args.events)
    res = run(n, args.concurrency, args.scale or "custom")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{res['date'][:10]}-ingest.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    d, b = res["front_door"], res["baseline_raw_producer"]
    print(f"{'':24}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    print(f"{'front door (HTTP)':24}{d['events_per_s']:>10}{d['p50_ms']:>9}{d['p99_ms']:>9}")
    print(f"{'raw confluent producer':24}{b['events_per_s']:>10}{'-':>9}{'-':>9}")
    print(f"ratio front door / raw producer: {res['ratio_front_door_vs_raw']}")
    print(f"written to {out.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
